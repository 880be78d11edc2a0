"""Who a client is: its IP address as seen through trusted proxies, and the key every
per-client limit counts it under.

Owns reading the client IP (the peer, or the right-most untrusted X-Forwarded-For hop behind
a trusted proxy) and `client_key` (IPv6 by prefix). The one place that reads client IPs; what
is done with them (limits, admission, the idempotency store) is elsewhere. It must not trust a
forwarding header from an untrusted peer, nor log an address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

from app.edge.proxy_trust import rewritten_by_server

# The IPv6 prefix a client is keyed by (BFF_IPV6_PREFIX_LEN): an end site is given a /64 at
# least (RFC 6177), so its 2^64 addresses are one client.
IPV6_PREFIX_LEN = 64


def client_key(address: str, ipv6_prefix_len: int) -> str:
    """The key every per-client limit counts `address` under: an IPv4 address as it is, an
    IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a dual-stack socket's IPv4 peer) as its IPv4,
    any other IPv6 address as its network of `ipv6_prefix_len` bits (`2001:db8:1:2::/64`);
    anything else (a unix socket, `unknown`) as it is, bounded. Pure."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # without a zone index
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    host_bits = 128 - ipv6_prefix_len
    network = ipaddress.IPv6Network((int(ip) >> host_bits << host_bits, ipv6_prefix_len))
    return str(network)


# What a request counts as when, with no trusted proxy, the server in front of the app gave
# it an address taken from the request's own X-Forwarded-For (proxy_trust.py): the real peer
# is unknown, and every such request is one client.
FORWARDED_CLIENT = "forwarded"


class ClientAddress:
    """The client IP: the peer, or the right-most untrusted X-Forwarded-For hop when the peer is
    a trusted proxy. Never trust the header from an untrusted peer: anyone can write it.

    The one place that reads client IPs. Every X-Forwarded-For line counts, in order: a proxy
    that appends a line of its own (HAProxy) rather than extending the first would otherwise
    let a client forge its address in the line it sent itself. With no trusted proxy, a peer
    address that the request's own X-Forwarded-For names is not believed (`FORWARDED_CLIENT`):
    a server in front of the app (uvicorn's default proxy headers) took it from the header.
    """

    # Hops examined from the right: more than any real chain of proxies.
    MAX_HOPS = 32

    def __init__(
        self, trusted_proxies: Sequence[str], *, ipv6_prefix_len: int = IPV6_PREFIX_LEN
    ) -> None:
        self._trusted = [ipaddress.ip_network(c, strict=False) for c in trusted_proxies]
        self._ipv6_prefix_len = ipv6_prefix_len

    def _is_trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """`forwarded_for`: every X-Forwarded-For header line, in the order received."""
        ip = peer or "unknown"
        if not forwarded_for:
            return ip
        raw = [h for line in forwarded_for for h in line.split(",") if h.strip()]
        if not self._trusted:
            # A server takes the right-most hop it does not trust, or the first one.
            hops = [_hop(h) for h in raw[:1] + raw[-self.MAX_HOPS :]]
            return FORWARDED_CLIENT if rewritten_by_server(_hop(ip), hops) else ip
        if not self._is_trusted(ip):
            return ip
        hops = [_hop(h) for h in raw[-self.MAX_HOPS :]]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else ip

    def of(self, scope: Scope) -> str:
        """The client IP of an ASGI connection scope."""
        client = scope.get("client")
        peer = client[0] if client else None
        lines = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
        ]
        return self.resolve(peer, lines)

    def key(self, scope: Scope) -> str:
        """The client key of an ASGI connection scope (`client_key` of its client IP): what
        every per-client limit, admission cap and per-client store counts under."""
        return client_key(self.of(scope), self._ipv6_prefix_len)


def _hop(text: str) -> str:
    """One X-Forwarded-For entry as an address: ports and IPv6 brackets removed, anything
    that is not an address kept as it is (bounded), so it can never match a trusted proxy."""
    text = text.strip()
    for candidate in (text, text.partition("]")[0].lstrip("["), text.rpartition(":")[0]):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return text[:64]
