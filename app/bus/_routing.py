"""Where fan-out reads a chat's channel: one link for a single server, the primary owning the
channel's slot on a Redis Cluster.

Owns the `Router` interface and its two implementations. It must not hold connections of its
own: a router only names links, tells where they connect, and re-reads a Cluster's slot map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot


@dataclass(frozen=True, slots=True)
class Route:
    """Where a channel is subscribed: a link's name and, on a Cluster, its node's address."""

    name: str
    host: str = ""
    port: int = 0


class Router(Protocol):
    """Which link carries a channel, and how to connect a link."""

    sharded: bool

    async def ready(self) -> None:
        """Load what `route` needs (a Cluster's slot map); idempotent."""
        ...

    def route(self, channel: str) -> Route: ...

    def current(self) -> frozenset[str]:
        """Names of the links routes may point to now; others are retired."""
        ...

    async def refresh(self) -> None:
        """Re-read the topology (after a failure, a SUNSUBSCRIBE or a MOVED)."""
        ...

    def connect(self, route: Route) -> Redis:
        """A fresh single-connection client for the link: RESP2, bytes, no retries."""
        ...


ONE = Route("redis")


class SingleRouter:
    """One server (plain, or the master a Sentinel names): one link for every channel."""

    sharded = False

    def __init__(self, connect: Callable[[], Redis]) -> None:
        self._connect = connect

    async def ready(self) -> None:
        return None

    def route(self, channel: str) -> Route:
        return ONE

    def current(self) -> frozenset[str]:
        return frozenset((ONE.name,))

    async def refresh(self) -> None:
        return None

    def connect(self, route: Route) -> Redis:
        return self._connect()


class ClusterRouter:
    """A Redis Cluster: a channel is read on the primary owning its slot (sharded pub/sub)."""

    sharded = True

    def __init__(self, cluster: RedisCluster, connect: Callable[[str, int], Redis]) -> None:
        self._cluster = cluster
        self._connect = connect

    async def ready(self) -> None:
        await self._cluster.initialize()

    def route(self, channel: str) -> Route:
        node = self._cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
        return Route(node.name, node.host, int(node.port))

    def current(self) -> frozenset[str]:
        nodes = self._cluster.nodes_manager.slots_cache.values()
        return frozenset(owners[0].name for owners in nodes if owners)

    async def refresh(self) -> None:
        await self._cluster.nodes_manager.initialize()

    def connect(self, route: Route) -> Redis:
        return self._connect(route.host, route.port)
