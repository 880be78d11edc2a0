"""Redis URLs: the forms the Redis bus takes, parsed and checked without the Redis client.

Owns the supported URL forms and their options (what `BFF_REDIS_URL` may say, checked when
the settings load) and the schemes `make_bus` sends to the Redis bus:

* `redis://`, `rediss://`, `unix://`: one server.
* `redis+sentinel://[user:pass@]host:port[,host:port...]/<service_name>[/db]` (`rediss+sentinel`
  for TLS): the master of `service_name`, found through the sentinels on every new connection
  (so a failover is followed); `user:pass` are the data nodes' credentials.
* `redis+cluster://[user:pass@]host:port[,host:port...]` (`rediss+cluster` for TLS): a Redis
  Cluster (Redis >= 7: fan-out uses sharded pub/sub).

Query options, the same for every form (unknown ones are refused, so a typo fails at startup):

* `socket_timeout`, `socket_connect_timeout`: seconds (default: `BFF_REDIS_TIMEOUT_S`).
* TLS schemes only: `ssl_ca_certs` (CA bundle file), `ssl_certfile` + `ssl_keyfile` (client
  certificate), `ssl_cert_reqs` (`required`, the default, `optional` or `none`),
  `ssl_check_hostname` (`true`/`false`; Cluster nodes announce IP addresses).
* Sentinel only: `sentinel_username`, `sentinel_password` (the sentinels' own credentials,
  when they differ from the data nodes'), `sentinel_ssl` (`true`/`false`; default: as the
  scheme). Sentinels use the same CA and client certificate.
* `unix://` only: `db`.

It must not import redis (the settings and the memory bus run without it) nor build clients
(`_connect` does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

Kind = Literal["direct", "sentinel", "cluster"]
_DEFAULT_PORT = {"sentinel": 26379, "cluster": 6379}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_CERT_REQS = ("required", "optional", "none")
# Options that carry secrets: never echoed in an error.
_SECRET_OPTIONS = ("sentinel_password",)


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
    # Parsed query options (see the module docstring), typed.
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    def tls(self) -> dict[str, Any]:
        """Connection keyword arguments for TLS (empty without it)."""
        if not self.ssl:
            return {}
        return {"ssl": True, **{k: v for k, v in self.options.items() if k.startswith("ssl_")}}

    def timeouts(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k.startswith("socket_")}


def parse_redis_url(url: str) -> RedisTarget:
    """Classify and split a Redis URL; raises ValueError for anything not supported. Error
    messages never contain a password."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError("Redis URL needs a scheme")
    rest, _, query = rest.split("#", 1)[0].partition("?")
    if scheme in ("redis", "rediss", "unix"):
        ssl = scheme == "rediss"
        options = _options(query, ssl=ssl, mode="unix" if scheme == "unix" else "")
        return RedisTarget("direct", url=f"{scheme}://{rest}", ssl=ssl, options=options)
    base, plus, mode = scheme.partition("+")
    if not plus or base not in ("redis", "rediss") or mode not in ("sentinel", "cluster"):
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}")
    ssl = base == "rediss"
    options = _options(query, ssl=ssl, mode=mode)
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
            "cluster", hosts=hosts, username=username, password=password, ssl=ssl, options=options
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
        ssl=ssl,
        options=options,
    )


def _options(query: str, *, ssl: bool, mode: str) -> dict[str, Any]:
    allowed = {"socket_timeout", "socket_connect_timeout"}
    if ssl:
        allowed |= {
            "ssl_ca_certs",
            "ssl_certfile",
            "ssl_keyfile",
            "ssl_cert_reqs",
            "ssl_check_hostname",
        }
    if mode == "sentinel":
        allowed |= {"sentinel_username", "sentinel_password", "sentinel_ssl"}
    if mode == "unix":
        allowed.add("db")
    out: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in allowed:
            hint = " (TLS options need a rediss scheme)" if name.startswith("ssl_") else ""
            raise ValueError(f"unsupported Redis URL option {name!r}{hint}")
        shown = "..." if name in _SECRET_OPTIONS else repr(raw)
        if name.startswith("socket_"):
            try:
                value: Any = float(raw)
            except ValueError:
                value = -1.0
            if not 0 < value <= 300:
                raise ValueError(f"Redis URL option {name} must be seconds in (0, 300]: {shown}")
        elif name in ("ssl_check_hostname", "sentinel_ssl"):
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError(f"Redis URL option {name} must be true or false, not {shown}")
            value = raw.lower() in _TRUE
        elif name == "ssl_cert_reqs":
            if raw.lower() not in _CERT_REQS:
                raise ValueError(f"Redis URL option {name} must be one of {', '.join(_CERT_REQS)}")
            value = raw.lower()
        elif name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if not os.path.isfile(raw):
                raise ValueError(f"Redis URL option {name}: no such file {shown}")
            value = raw
        elif name == "db":
            if not raw.isdigit():
                raise ValueError(f"Redis URL option db must be an integer, not {shown}")
            value = int(raw)
        else:
            value = raw
        out[name] = value
    if ("ssl_certfile" in out) != ("ssl_keyfile" in out):
        raise ValueError("Redis URL options ssl_certfile and ssl_keyfile go together")
    return out


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
