"""Client construction for the Redis bus: a `redis_url.RedisTarget` made into the command
client and the clients fan-out reads from.

Commands go through `Redis` (one server, or the master a Sentinel group names on every new
connection) or `RedisCluster` (slot map, MOVED/ASK); fan-out opens its own connection to the
one server or master (`pubsub_client`) or to each Cluster primary (`node_client`). The URL forms
and their options are `redis_url`'s.

It must not talk to Redis itself (beyond what client constructors do lazily) nor know keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from app.bus.redis_url import RedisTarget, parse_redis_url


@dataclass(slots=True)
class Clients:
    """The command client, and factories for the connections fan-out reads from."""

    commands: Redis | RedisCluster
    target: RedisTarget
    base_kwargs: dict[str, Any]
    sentinel: Sentinel | None = None

    def pubsub_client(self, **extra: Any) -> Redis:
        """A client for the single pub/sub connection of a plain or Sentinel bus (called again
        after a connection loss, so a Sentinel reader follows a failover)."""
        kwargs = {**self.base_kwargs, **extra}
        if self.target.kind == "direct":
            return Redis.from_url(self.target.url, **kwargs)
        assert self.sentinel is not None, "a Cluster reads from node_client"
        client: Redis = self.sentinel.master_for(
            self.target.service_name, db=self.target.db, **kwargs
        )
        return client

    def node_client(self, host: str, port: int, **extra: Any) -> Redis:
        """A plain client to one Cluster node (sharded pub/sub is per node)."""
        kwargs = {**self.base_kwargs, **extra}
        return Redis(
            host=host,
            port=port,
            username=self.target.username,
            password=self.target.password,
            **self.target.tls(),
            **kwargs,
        )


def make_clients(url: str, **kwargs: Any) -> Clients:
    """Build the command client; `kwargs` are connection options common to all clients (the
    URL's timeouts override theirs)."""
    target = parse_redis_url(url)
    kwargs = {**kwargs, **target.timeouts()}
    if target.kind == "direct":
        extra = {k: v for k, v in target.options.items() if k == "db" or k.startswith("ssl_")}
        kwargs.update(extra)
        return Clients(Redis.from_url(target.url, **kwargs), target, kwargs)
    if target.kind == "sentinel":
        options = target.options
        sentinel_tls = options.get("sentinel_ssl", target.ssl)
        tls = {k: v for k, v in target.tls().items() if k != "ssl"}
        sentinel_kwargs: dict[str, Any] = {
            **{k: v for k, v in kwargs.items() if k.startswith("socket_")},
            "username": options.get("sentinel_username"),
            "password": options.get("sentinel_password"),
        }
        if sentinel_tls:
            sentinel_kwargs.update(ssl=True, **tls)
        sentinel = Sentinel(
            list(target.hosts),
            sentinel_kwargs=sentinel_kwargs,
            username=target.username,
            password=target.password,
            **target.tls(),
        )
        master: Redis = sentinel.master_for(target.service_name, db=target.db, **kwargs)
        return Clients(master, target, kwargs, sentinel)
    nodes = [ClusterNode(host, port) for host, port in target.hosts]
    options = {k: v for k, v in kwargs.items() if k != "health_check_interval"}
    cluster = RedisCluster(
        startup_nodes=nodes,
        username=target.username,
        password=target.password,
        **target.tls(),
        **options,
    )
    return Clients(cluster, target, kwargs)
