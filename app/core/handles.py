"""Chat handles, client identity and origins.

Owns sealing upstream chat ids into opaque handles (AES-256-GCM under keys derived from
`BFF_SECRET_KEY`, several keys for rotation), the chat key used on the bus, the client IP as
seen through trusted proxies, the client key every per-client limit counts under (IPv6 by
prefix) and the origin policy (abuse limits are `limits.py`). It must not log or return an
upstream id, a key, or anything derived from a key other than a handle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.types import Scope

from app.errors import ChatNotFoundError, OriginNotAllowedError
from app.models import MAX_UPSTREAM_ID_BYTES, ChatRef
from app.proxy_trust import rewritten_by_server

_VERSION = b"\x01"
_NONCE_BYTES = 12
_KEY_ID_BYTES = 4
_AAD = b"chat-bff handle v1"
# version + key id + nonce + tag, plus 1..MAX id bytes, base64url without padding.
_MIN_HANDLE = (1 + _KEY_ID_BYTES + _NONCE_BYTES + 16 + 1) * 4 // 3
_MAX_HANDLE = (1 + _KEY_ID_BYTES + _NONCE_BYTES + 16 + MAX_UPSTREAM_ID_BYTES) * 4 // 3 + 4
# `^...$` for OpenAPI (ECMA-262 regex); in code the whole string must match (`fullmatch`):
# Python's `$` also matches before a trailing newline.
HANDLE_PATTERN = rf"^[A-Za-z0-9_-]{{{_MIN_HANDLE},{_MAX_HANDLE}}}$"
_HANDLE_RE = re.compile(HANDLE_PATTERN.removeprefix("^").removesuffix("$"))


def _derive(secret: bytes) -> tuple[bytes, AESGCM]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_AAD).derive(secret)
    key_id = hashlib.sha256(b"key-id" + key).digest()[:_KEY_ID_BYTES]
    return key_id, AESGCM(key)


def chat_key(upstream_id: str) -> str:
    """The bus name of a chat: a digest, so the bus never needs a handle to address a chat."""
    return hashlib.sha256(b"chat-bff chat " + upstream_id.encode()).hexdigest()[:32]


class HandleCodec:
    """Seals upstream chat ids into handles and opens them again.

    A handle carries 96 random nonce bits and a 128-bit authentication tag: it cannot be
    guessed or altered, shows nothing of the upstream id, and needs no stored state, so it keeps
    working when Redis loses everything. The first key seals; every key opens, so a new key can
    be put first while handles sealed under the old one stay valid until it is removed.
    """

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("at least one secret key is required")
        self._keys = [_derive(s) for s in secrets]

    def seal(self, upstream_id: str) -> str:
        raw = upstream_id.encode()
        if not 1 <= len(raw) <= MAX_UPSTREAM_ID_BYTES:
            raise ValueError("upstream id length out of range")
        key_id, aead = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        header = _VERSION + key_id
        sealed = aead.encrypt(nonce, raw, _AAD + header)
        return base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode()

    def open(self, handle: str) -> str:
        """The upstream id inside `handle`; ChatNotFoundError for anything not sealed by us."""
        if not _HANDLE_RE.fullmatch(handle):
            raise ChatNotFoundError()
        try:
            blob = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))
        except (binascii.Error, ValueError):
            raise ChatNotFoundError() from None
        header, nonce = blob[: 1 + _KEY_ID_BYTES], blob[1 + _KEY_ID_BYTES : 1 + 4 + _NONCE_BYTES]
        if header[:1] != _VERSION:
            raise ChatNotFoundError()
        for key_id, aead in self._keys:
            if key_id != header[1:]:
                continue
            try:
                raw = aead.decrypt(nonce, blob[1 + _KEY_ID_BYTES + _NONCE_BYTES :], _AAD + header)
                return raw.decode()
            except (InvalidTag, UnicodeDecodeError):
                break
        raise ChatNotFoundError()

    def resolve(self, handle: str) -> ChatRef:
        """The chat behind `handle`; ChatNotFoundError for anything not sealed by us."""
        upstream_id = self.open(handle)
        return ChatRef(handle, upstream_id, chat_key(upstream_id))

    def issue(self, upstream_id: str) -> ChatRef:
        """A new chat's identity, under a fresh handle."""
        return ChatRef(self.seal(upstream_id), upstream_id, chat_key(upstream_id))


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


class OriginPolicy:
    """Browsers may call us from the allow-listed origins, or from our own origin; with `*`
    from any origin, without credentials. The `null` origin (sandboxed frames, `file:`
    pages, data URLs: anyone can make one) is never allowed, whatever the list says.

    Requests without an Origin header (mobile apps, servers, same-origin GETs) are allowed: the
    policy guards against other sites driving a visitor's browser, not against direct clients.
    """

    def __init__(self, allowed: Sequence[str]) -> None:
        self._any = "*" in allowed
        self._allowed = frozenset(o for o in allowed if o != "*" and not _is_null(o))

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        if _is_null(origin):
            return False
        return self._any or self.credentialed(origin, host)

    def credentialed(self, origin: str, host: str | None) -> bool:
        """Listed by name, or our own: answered with the origin and credentials. An origin
        allowed only by `*` gets `*` and no credentials (the CORS rule for a wildcard)."""
        origin = origin.rstrip("/")
        if _is_null(origin):
            return False
        if origin in self._allowed:
            return True
        return host is not None and urlsplit(origin).netloc == host

    def check(self, origin: str | None, host: str | None) -> None:
        if not self.allows(origin, host):
            raise OriginNotAllowedError()


def _is_null(origin: str) -> bool:
    # As browsers send it ("null"), and any spelling of it a client may try.
    return origin.strip(" \t/").lower() == "null"
