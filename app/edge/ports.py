"""Which paths each listening port serves, when `BFF_INTERNAL_PORT` is set (`chat-bff serve`
then listens on it too, `app/cli.py`).

The internal port serves `/healthz`, `/readyz` and `/metrics` and nothing else (404): it is
for the kubelet, load-balancer health checks and Prometheus, kept off the public network by
the deployment. The public port serves everything but `/metrics`, so that the process's
figures never reach the public through a proxy that forwards every path. Without an internal
port, nothing changes: every path on the one port.

Decided by the port the connection came in on (`scope["server"]`, the socket's own address),
never by a header a client could write. Pure ASGI. It must not know what the paths answer.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.edge.paths import without_trailing_slash
from app.errors import ChatNotFoundError, error_response

INTERNAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Served on the internal port only, once there is one.
INTERNAL_ONLY = frozenset({"/metrics"})


class NotFoundError(ChatNotFoundError):
    default_message = "Not found"


def served_on(path: str, *, internal: bool) -> bool:
    """Whether a port serves `path` (an internal port is configured)."""
    path = without_trailing_slash(path)
    return path in INTERNAL_PATHS if internal else path not in INTERNAL_ONLY


class PortSplit:
    """404 for a path its port does not serve (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, internal_port: int | None) -> None:
        self.app = app
        self.internal_port = internal_port

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: a request passed through runs as the app's own awaitable.
        if self.internal_port is None or scope["type"] != "http":
            return self.app(scope, receive, send)
        server = scope.get("server")
        internal = server is not None and server[1] == self.internal_port
        if served_on(scope["path"], internal=internal):
            return self.app(scope, receive, send)
        return error_response(NotFoundError())(scope, receive, send)
