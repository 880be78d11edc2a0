"""`create_app()`: the service as an ASGI app: the runtime `build_runtime` wires from the
settings (`app/build.py`), and around it the routes, the middleware and the lifespan that
starts and closes it.

Nothing is created at import time; `uvicorn app.main:create_app --factory` reads the settings
from the environment when it calls the factory. Tests and the demo pass their own pieces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from sse_starlette.sse import AppStatus
from starlette.routing import Route

from app.api.docs import install_docs
from app.api.openapi import install_openapi, operation_id
from app.build import build_runtime
from app.bus import Bus, parse_redis_url
from app.config.settings import Settings, load_settings
from app.edge.access import AccessLog
from app.edge.cors import CrossOrigin, OriginPolicy
from app.edge.error_handlers import install_error_handlers
from app.edge.guard import ApiGuard, ResponsePolicy
from app.edge.idempotency import IdempotencyGuard, IdempotencyPolicy, install_idempotency_docs
from app.edge.idempotency_keys import Retention
from app.edge.paths import TrailingSlash
from app.edge.ports import PortSplit
from app.edge.proxy_trust import adopt_in_uvicorn
from app.edge.static_files import (
    DEMO_PAGE,
    HASHED_CACHE,
    PLAIN_CACHE,
    CachedStaticFiles,
    content_hash,
    static_dir,
)
from app.routes import chats, events, health, offline, survey
from app.runtime import Runtime
from app.version import VERSION

log = logging.getLogger("chat_bff")


def create_app(
    settings: Settings | None = None,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    bus: Bus | None = None,
) -> FastAPI:
    """Build the service. `upstream_transport` lets the demo reach an in-process emulator."""
    settings = settings or load_settings()  # the environment, unknown BFF_* names refused
    # Under `uvicorn --factory`, uvicorn's own proxy-header default would otherwise apply.
    adopt_in_uvicorn(settings.trusted_proxies)
    runtime = build_runtime(settings, upstream_transport=upstream_transport, bus=bus)
    metrics = runtime.metrics
    origins = OriginPolicy(settings.allowed_origins)
    widget_url: str | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _log_startup(settings, widget_url)
        runtime.start()
        watcher = asyncio.create_task(_drain_when_server_exits(runtime), name="exit-watch")
        try:
            yield
        finally:
            watcher.cancel()
            await runtime.aclose()

    app = FastAPI(
        title="chat-bff",
        version="0.1.0",
        summary="Customer chat API, wire-compatible with the contact center's, plus push.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by install_docs, from this server: no CDN
        redoc_url=None,
    )
    app.router.redirect_slashes = False  # TrailingSlash routes `/x/` as `/x`, no redirect
    app.state.runtime = runtime
    install_error_handlers(app)
    routers = (chats.router, events.router, health.router, offline.router, survey.router)
    for router in routers:
        app.include_router(router)
    # Streams are served by a plain ASGI route first in line (events.StreamRoute says why).
    app.router.routes.insert(0, events.StreamRoute(runtime))
    widget_url = _mount_static(app, demo_page=settings.demo_page)
    install_openapi(app, long_poll_max_s=settings.long_poll_max_s)
    install_idempotency_docs(app)
    install_docs(app)

    app.add_middleware(
        IdempotencyGuard,
        store=runtime.bus,
        policy=IdempotencyPolicy(
            retention=Retention(
                keep_s=settings.idempotency_window_s,
                keep_error_s=settings.idempotency_error_window_s,
            ),
            # Longer than any one request can run (bus calls, a queued upstream call, its
            # deadline): a claim outliving its request only if the instance died meanwhile.
            in_flight_s=2 * settings.upstream_timeout_s + 10,
            max_per_client=settings.idempotency_max_per_client,
            max_total=settings.idempotency_max_entries,
            floor_per_client=settings.idempotency_floor_per_client,
        ),
        # The client key every per-client limit counts under (an IPv4 address, an IPv6 /64).
        client_of=runtime.client_address.key,
        routes=app.routes,
        on_refused=lambda limit: metrics.idempotency_refused.labels(limit).inc(),
        on_unkept=metrics.idempotency_unkept.inc,
    )
    app.add_middleware(ApiGuard, max_body_bytes=settings.max_body_bytes, routes=app.routes)
    app.add_middleware(TrailingSlash)
    app.add_middleware(CrossOrigin, origins=origins)
    app.add_middleware(ResponsePolicy)
    # The internal port's paths, and /metrics kept off the public port (BFF_INTERNAL_PORT).
    app.add_middleware(PortSplit, internal_port=settings.internal_port)
    # Outermost: every answer gets a request id and one access-log line, 403/413 included.
    app.add_middleware(
        AccessLog,
        metrics=metrics,
        # Every X-Forwarded-For line, as the routes read it (ClientAddress).
        client_ip=lambda peer, headers: runtime.client_address.resolve(
            peer, headers.getlist("x-forwarded-for")
        ),
        # Every route by its template: the app's own (docs, OpenAPI) and the routers' (which
        # the app holds only as included routers).
        routes=[
            *(route for route in app.routes if isinstance(route, Route)),
            *(route for router in routers for route in router.routes),
        ],
    )
    return app


def _log_startup(settings: Settings, widget_url: str | None) -> None:
    """One line that says what this process talks to: never an id, a key or a password."""
    if settings.redis_url is None:
        bus = "memory (one process)"
    else:
        bus = f"redis {parse_redis_url(settings.redis_url).kind}"
        if settings.redis_url.startswith("rediss"):
            bus += " (tls)"
    upstream = urlsplit(str(settings.upstream_url))
    host = upstream.hostname or "?"
    if upstream.port:
        host += f":{upstream.port}"
    log.info(
        "chat-bff %s: bus %s, upstream %s, widget %s",
        VERSION,
        bus,
        host,
        widget_url or "none",
        extra={
            "version": VERSION,
            "bus": bus,
            "upstream_host": host,
            "widget": widget_url,
            "max_streams": settings.max_streams,
        },
    )


async def _drain_when_server_exits(runtime: Runtime) -> None:
    """`chat-bff serve` starts the drain from its signal handler. Under a plain uvicorn the
    only notice is the SSE library's hook on uvicorn's exit handler; without a drain, open
    streams would hold the shutdown until uvicorn's graceful timeout."""
    while not AppStatus.should_exit:  # noqa: ASYNC110 - a flag another library sets
        await asyncio.sleep(0.5)
    runtime.begin_drain()


def _mount_static(app: FastAPI, *, demo_page: bool) -> str | None:
    """The widget under `/static/v/<content hash>/` (immutable) and `/static/` (short-lived);
    returns the hashed URL of widget.js. `/` is the demo shop page only when `demo_page`;
    otherwise a short JSON that says what this server is and where its docs are."""
    directory = static_dir()
    hidden = frozenset() if demo_page else frozenset({DEMO_PAGE})
    prefix = None if directory is None else f"/static/v/{content_hash(directory)}"
    if directory is not None and prefix is not None:
        app.mount(
            prefix,
            CachedStaticFiles(directory=directory, cache_control=HASHED_CACHE, hidden=hidden),
        )
        app.mount(
            "/static",
            CachedStaticFiles(directory=directory, cache_control=PLAIN_CACHE, hidden=hidden),
            name="static",
        )
    widget_url = None if prefix is None else f"{prefix}/widget.js"
    index = None if directory is None or not demo_page else directory / DEMO_PAGE

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        if index is not None and index.is_file():
            return FileResponse(index)
        return JSONResponse({"service": "chat-bff", "docs": "/docs", "widget": widget_url})

    return widget_url
