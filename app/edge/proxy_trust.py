"""Whose forwarding headers count, however the app is served: `BFF_TRUSTED_PROXIES`, not the
server's own default.

uvicorn believes `X-Forwarded-For` and `X-Forwarded-Proto` by default (`proxy_headers=True`)
from `127.0.0.1` and `::1` (or `$FORWARDED_ALLOW_IPS`): its `ProxyHeadersMiddleware`, wrapped
around the app after the factory returns it, rewrites `scope["client"]` to an address taken
from the header, and the original peer is gone before any of our code runs. Under a plain
`uvicorn app.main:create_app --factory`, a local proxy (or anyone able to connect from the
host) would pick a new client address per request, and escape every per-client limit.

Two guards, both needed:

* `adopt_in_uvicorn`: the factory, when uvicorn's `Config.load` is calling it, sets that
  Config's `proxy_headers` and `forwarded_allow_ips` to ours before uvicorn reads them (it
  reads them after the factory returns), so uvicorn applies exactly `BFF_TRUSTED_PROXIES`,
  as `chat-bff serve` configures it (`cli.py`).
* `rewritten_by_server`: for servers that wrap the app themselves (gunicorn's uvicorn worker
  builds its Config around an app it loaded itself): with no trusted proxy, an address that
  the request's own `X-Forwarded-For` names was (or may have been) taken from that header, so
  it is not believed (`clients.ClientAddress`).

It must not decide what a client is (that is `clients.py`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from types import FrameType

from uvicorn.config import Config

log = logging.getLogger("chat_bff.proxy_trust")

# How far up the stack uvicorn's Config.load may be from create_app (it calls the factory
# directly; a few frames of slack for a wrapper or a future helper method).
_FRAMES = 8


def adopt_in_uvicorn(trusted_proxies: Sequence[str]) -> bool:
    """If a uvicorn `Config` is loading the app through its factory, make it trust proxy
    headers from `trusted_proxies` only (none: proxy headers off). Says whether it did."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_FRAMES):
        if frame is None:
            return False
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Config) and not candidate.loaded:
            candidate.proxy_headers = bool(trusted_proxies)
            candidate.forwarded_allow_ips = list(trusted_proxies)
            log.info(
                "uvicorn's proxy headers: %s",
                "trusted from BFF_TRUSTED_PROXIES" if trusted_proxies else "off",
            )
            return True
        frame = frame.f_back
    return False


def rewritten_by_server(peer: str, hops: Iterable[str]) -> bool:
    """True when `peer` (the address the server put in the scope) is one of the request's own
    X-Forwarded-For hops: a server in front of the app took it from the header (or the client
    wrote its own address there). Only meaningful when no proxy is trusted: then no server of
    ours should have read the header at all."""
    return any(hop == peer for hop in hops)
