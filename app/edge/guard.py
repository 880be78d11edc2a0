"""Pure ASGI middleware for the API's transport rules: body size, JSON only, the caching
policy of every answer (request metrics: `access.py`; origins: `cors.py`, which runs before
this).

Pure ASGI on purpose: `BaseHTTPMiddleware` buffers and breaks streaming responses (SSE).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Sequence

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    BffError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_response,
)

# The API takes bodies on POST only; other methods go on to the router (405).
_BODY_METHODS = frozenset({"POST"})
_DIGITS = re.compile(r"[0-9]{1,12}")


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over in one message, then defers to the
    server's (which reports the client leaving)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class ApiGuard:
    """Rejects, before anything else reads a POST under the prefix: a body over
    `max_body_bytes` (413, on every path, routed or not, however the body is framed), and a
    non-JSON body where a route takes it (415; elsewhere the router answers 404/405)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        prefix: str = "/api/",
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix
        self.routes = routes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: a request passed through (every read, every stream) runs as the
        # app's own awaitable, holding no frame of this layer while it lasts.
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not scope["path"].startswith(self.prefix)
        ):
            return self.app(scope, receive, send)
        error = self._check(Headers(scope=scope), routed=self._takes_body(scope))
        if error is not None:
            return _refusal(error)(scope, receive, send)
        return self._with_body(scope, receive, send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The whole body is read here, within the limit, before anything else runs (a route,
        # the idempotency layer, or the router's 404 for a path no route takes): a limit
        # raised from inside `receive` would surface as whatever the body parser makes of an
        # exception (FastAPI: 400), and a chunked body has no Content-Length to check.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _refusal(PayloadTooLargeError())(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(bytes(body), receive), send)

    def _takes_body(self, scope: Scope) -> bool:
        """A route exists for this method and path (else the router answers 404/405, not us
        415). Without `routes`, every path under the prefix is taken to have one."""
        if not self.routes:
            return True
        return any(route.matches(scope)[0] is Match.FULL for route in self.routes)

    def _check(self, headers: Headers, *, routed: bool) -> BffError | None:
        length = headers.get("content-length")
        if length is not None and (
            not _DIGITS.fullmatch(length) or int(length) > self.max_body_bytes
        ):
            return PayloadTooLargeError()
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if routed and media != "application/json":
            return UnsupportedMediaTypeError()
        return None


def _refusal(error: BffError) -> Response:
    response = error_response(error)
    if isinstance(error, PayloadTooLargeError):
        # And close: the rest of an oversized body is not read, not even to skip it.
        response.headers["Connection"] = "close"
    return response


# -- response policy ------------------------------------------------------------------------

# Paths answered to HEAD like to GET, without the body (load balancers and uptime checks).
HEAD_AS_GET = frozenset({"/", "/healthz", "/readyz"})
STATIC_MAX_AGE_S = 300


def cache_control_for(path: str, status: int) -> str:
    """How long anyone may keep an answer that did not say so itself.

    Only the widget's files may be shared by a CDN, and briefly (a deploy shows within five
    minutes); the page that loads them is revalidated each time. Everything else is about one
    chat, one client or this instance's health right now: never stored, by anyone."""
    if path.startswith("/static/") and (200 <= status < 300 or status == 304):
        return f"public, max-age={STATIC_MAX_AGE_S}"
    if path == "/" and (200 <= status < 300 or status == 304):
        return "no-cache"
    return "no-store"


class ResponsePolicy:
    """Every answer carries a Cache-Control (`cache_control_for`, unless the route chose one),
    and HEAD on `HEAD_AS_GET` is answered like GET without a body. Outermost, so it also
    covers 404/405, preflights, body-parse errors, docs and static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = scope["method"] == "HEAD" and path in HEAD_AS_GET
        if head:
            scope = {**scope, "method": "GET"}

        async def policed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    value = cache_control_for(path, message["status"])
                    headers.append((b"cache-control", value.encode()))
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, policed)
