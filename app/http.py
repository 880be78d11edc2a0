"""Pure ASGI middleware for the API's transport rules: body size, JSON only, and per-route
request metrics. (Origins: `app/cors.py`, which runs before this.)

Pure ASGI on purpose: `BaseHTTPMiddleware` buffers and breaks streaming responses (SSE).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    BffError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_response,
)
from app.metrics import Metrics

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ApiGuard:
    """Rejects, before any route runs: bodies over `max_body_bytes` (413) and non-JSON bodies
    (415)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, prefix: str = "/api/") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        error = self._check(scope["method"], headers)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError()
            return message

        await self.app(scope, limited_receive, send)

    def _check(self, method: str, headers: Headers) -> BffError | None:
        if method not in _BODY_METHODS:
            return None
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return PayloadTooLargeError()
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return UnsupportedMediaTypeError()
        return None


class RequestMetrics:
    """Counts answered requests by route template, never by raw path: a chat handle is a
    bearer credential (the access log, by route template too, is app/access.py)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.http_requests.labels(name, str(status)).inc()
