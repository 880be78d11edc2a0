"""Where fan-out reads a chat's channel: one link for a single server, the primary owning the
channel's slot on a Redis Cluster.

Owns the `Router` interface, its two implementations, and the choice between them for a bus's
clients (`router_for`, with the options of a link's connection). It must not hold connections
of its own: a router only names links, tells where they connect, and re-reads a Cluster's slot
map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from app.bus._connect import Clients


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


def router_for(clients: Clients, client_name: str) -> Router:
    """The router of a bus's clients: a Cluster's, else the one link of a server or master.
    Links connect as `client_name`."""
    # RESP2 and bytes: redis-py parses PING replies on a pub/sub connection (our barriers)
    # right only in that mode. No retries: a lost connection must surface to the reader.
    options: dict[str, Any] = {
        "client_name": client_name,
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "decode_responses": False,
    }
    commands = clients.commands
    if isinstance(commands, RedisCluster):
        return ClusterRouter(
            commands, lambda host, port: clients.node_client(host, port, **options)
        )
    return SingleRouter(lambda: clients.pubsub_client(**options))
