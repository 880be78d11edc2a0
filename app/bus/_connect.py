"""Redis URLs and client construction for the Redis bus.

Owns the supported URL forms and how each becomes a command client and a pub/sub client:

* `redis://`, `rediss://`, `unix://`: `redis.asyncio.from_url`.
* `redis+sentinel://[user:pass@]host:port[,host:port...]/<service_name>[/db]` (`rediss+sentinel`
  for TLS): the master of `service_name` via `Sentinel.master_for`; credentials go to the
  master, not to the sentinels.
* `redis+cluster://[user:pass@]host:port[,host:port...]` (`rediss+cluster` for TLS): commands via
  `RedisCluster`; pub/sub on a plain connection to ONE node. Classic PUBLISH is broadcast to
  every node of a cluster, so a subscriber on any node sees every chat's events; if that node
  fails the reader reconnects to another one (and resyncs its subscribers).

It must not talk to Redis itself (beyond what client constructors do lazily) nor know keys.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

Kind = Literal["direct", "sentinel", "cluster"]
_DEFAULT_PORT = {"sentinel": 26379, "cluster": 6379}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    kind: Kind
    url: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False


def parse_redis_url(url: str) -> RedisTarget:
    """Classify and split a Redis URL; raises ValueError for anything not supported."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError("Redis URL needs a scheme")
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget("direct", url=url)
    base, plus, mode = scheme.partition("+")
    if not plus or base not in ("redis", "rediss") or mode not in ("sentinel", "cluster"):
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts = tuple(_host_port(h, _DEFAULT_PORT[mode]) for h in netloc.split(",") if h)
    if not hosts:
        raise ValueError("Redis URL names no host")
    parts = [p for p in path.split("/") if p]
    if mode == "cluster":
        if parts:
            raise ValueError("a Redis Cluster URL takes no path (Cluster has only db 0)")
        return RedisTarget(
            "cluster", hosts=hosts, username=username, password=password, ssl=base == "rediss"
        )
    if not parts or len(parts) > 2:
        raise ValueError("a Sentinel URL needs /<service_name>[/<db>]")
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise ValueError("the Sentinel URL's db must be an integer") from None
    return RedisTarget(
        "sentinel",
        hosts=hosts,
        service_name=unquote(parts[0]),
        db=db,
        username=username,
        password=password,
        ssl=base == "rediss",
    )


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):
        host, _, tail = item[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"bad host in Redis URL: {item!r}")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"bad port in Redis URL: {item!r}") from None


@dataclass(slots=True)
class Clients:
    """The command client, and a factory for the single pub/sub client (called again by the
    reader after a connection loss, so a Cluster reader can move to another node)."""

    commands: Redis | RedisCluster
    target: RedisTarget
    base_kwargs: dict[str, Any]
    sentinel: Sentinel | None = None

    async def pubsub_client(self, **extra: Any) -> Redis:
        kwargs = {**self.base_kwargs, **extra}
        if self.target.kind == "direct":
            return Redis.from_url(self.target.url, **kwargs)
        if self.target.kind == "sentinel":
            assert self.sentinel is not None
            client: Redis = self.sentinel.master_for(
                self.target.service_name, db=self.target.db, **kwargs
            )
            return client
        cluster = self.commands
        assert isinstance(cluster, RedisCluster)
        await cluster.initialize()
        node = random.choice(cluster.get_primaries())
        return Redis(host=node.host, port=int(node.port), **self._auth(), **kwargs)

    def _auth(self) -> dict[str, Any]:
        auth: dict[str, Any] = {"username": self.target.username, "password": self.target.password}
        if self.target.ssl:
            auth["ssl"] = True
        return auth


def make_clients(url: str, **kwargs: Any) -> Clients:
    """Build the command client; `kwargs` are connection options common to both clients."""
    target = parse_redis_url(url)
    if target.kind == "direct":
        return Clients(Redis.from_url(url, **kwargs), target, kwargs)
    if target.kind == "sentinel":
        sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts),
            sentinel_kwargs=sentinel_kwargs,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
        )
        master: Redis = sentinel.master_for(target.service_name, db=target.db, **kwargs)
        return Clients(master, target, kwargs, sentinel)
    nodes = [ClusterNode(host, port) for host, port in target.hosts]
    options = {k: v for k, v in kwargs.items() if k != "health_check_interval"}
    cluster = RedisCluster(
        startup_nodes=nodes,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        **options,
    )
    return Clients(cluster, target, kwargs)
