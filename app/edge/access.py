"""The access log, the request-duration histogram and the request counter: one line and one
count per answered request, by route template.

Pure ASGI (streams pass through unbuffered). Owns the request id (taken from `X-Request-ID`
or made, echoed back in the response) and the per-request line: method, route template,
status, duration and client IP. It must never log a raw path or query string: a chat handle
is a bearer credential, so only the route template (`/api/v2/chats/{handle}`) is written.
Every answer to a path a route takes carries that route's template, answered by the route or
before it (an idempotent replay, a refused Idempotency-Key, a 413): `unmatched` is left for
paths no route takes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import RequestScope, current_request, fields, request_id_from
from app.metrics import Metrics

access_log = logging.getLogger("chat_bff.access")

ClientIp = Callable[[str | None, Headers], str]


class AccessLog:
    """`routes` are the app's: the template of an answer given before the router (which
    names its route itself) is that of the route the path goes to."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        client_ip: ClientIp,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.client_ip = client_ip
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request = RequestScope(request_id_from(headers.get("x-request-id")))
        token = current_request.set(request)
        status = 500
        stream = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                answer = MutableHeaders(scope=message)
                answer["X-Request-ID"] = request.request_id
                stream = answer.get("content-type", "").startswith("text/event-stream")
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            route = _template(scope, self.routes)
            method = scope["method"]
            # A stream's duration is how long a visitor stayed: it would swamp the histogram
            # of answers. Streams are counted by bff_sse_streams instead.
            if not stream:
                self.metrics.request_duration.labels(route, method).observe(seconds)
            self.metrics.http_requests.labels(route, str(status)).inc()
            client = scope.get("client")
            access_log.info(
                "%s %s %s %.1fms",
                method,
                route,
                status,
                seconds * 1000,
                extra=fields(
                    request_id=request.request_id,
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(seconds * 1000, 1),
                    client_ip=self.client_ip(client[0] if client else None, headers),
                    stream=stream or None,
                ),
            )
            request.open = False
            current_request.reset(token)


def _template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The route's template; for a mount (the widget's files) the mount's path; never the
    request's own path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and not isinstance(route, Mount):
        return path
    mounted = scope.get("root_path", "")
    if mounted and mounted != scope.get("app_root_path", ""):
        return f"{mounted}/*"
    # Answered before the router, or by a router that names only its own kind of route
    # (FastAPI's leaves its docs routes unnamed): the route this path goes to, with the
    # trailing slash TrailingSlash forgives.
    bare = scope["path"].rstrip("/") or "/"
    probe = {**scope, "path": bare}
    for candidate in routes:
        if isinstance(candidate, Mount):
            continue
        if candidate.matches(probe)[0] is not Match.NONE:
            template = getattr(candidate, "path", None)
            if isinstance(template, str):
                return template
    return "unmatched"
