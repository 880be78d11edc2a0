"""Trailing slashes: every route answers with and without one, directly (no redirect).

Owns the path a request is routed by. The upstream accepts `/api/v2/chats/` as well as
`/api/v2/chats`, and its clients use both; a redirect would cost a round trip, re-send a POST
body only if the client follows 307s, and (behind a TLS proxy) could point at the wrong scheme.
It must not change anything but the one trailing slash.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def without_trailing_slash(path: str) -> str:
    """`/a/b/` -> `/a/b`; the root stays `/`."""
    stripped = path.rstrip("/")
    return stripped or "/"


class TrailingSlash:
    """Routes `/x/` as `/x` (pure ASGI: the scope is copied, never the body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: it hands over the app's own awaitable, so a stream open for hours
        # holds no frame of this layer.
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = dict(scope)
            scope["path"] = without_trailing_slash(scope["path"])
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        return self.app(scope, receive, send)


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """Every method some route of `app` answers at this request's path, for a 405's `Allow`
    (Starlette names only the first route that matched the path). Mounts (static files)
    answer their own 405s and are not asked."""
    routes = getattr(getattr(app, "router", None), "routes", ())
    return [
        method
        for method in _METHODS
        if any(
            not isinstance(route, Mount)
            and route.matches({**scope, "method": method})[0] is Match.FULL
            for route in routes
        )
    ]
