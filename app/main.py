"""`create_app()`: the one place that wires settings, upstream client, bus and routes.

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

from app.access import AccessLog
from app.admission import StreamAdmission, StreamCapacity
from app.bus import Bus, TranscriptLimits, make_bus, parse_redis_url
from app.bus.hooks import OutboxQuota
from app.config import Settings, load_settings
from app.config_hooks import webhook_keys
from app.cors import CrossOrigin
from app.docs import install_docs
from app.errors import install_error_handlers
from app.fleet_view import FleetView
from app.hours import parse as parse_business_hours
from app.http import ApiGuard, ResponsePolicy
from app.idempotency import IdempotencyGuard, IdempotencyPolicy, install_idempotency_docs
from app.idempotency_keys import Retention
from app.limits import ConcurrencyLimiter, RateLimiter
from app.metrics import Metrics
from app.offline import KIND as OFFLINE_KIND
from app.offline import OfflineDesk
from app.openapi import install_openapi, operation_id
from app.paths import TrailingSlash
from app.poller import PollerTuning
from app.ports import PortSplit
from app.proxy_trust import adopt_in_uvicorn
from app.push import KIND as PUSH_KIND
from app.push import PushHook
from app.registry import Keepalive, PollerRegistry
from app.routes import chats, events, health, offline, survey
from app.schedule import Budget
from app.security import ClientAddress, HandleCodec, OriginPolicy
from app.service import ChatService
from app.sse import MAX_DRAIN_SPREAD_S, StreamHub, StreamTuning
from app.static_files import (
    DEMO_PAGE,
    HASHED_CACHE,
    PLAIN_CACHE,
    CachedStaticFiles,
    content_hash,
    static_dir,
)
from app.survey import KIND as SURVEY_KIND
from app.survey import SurveyDesk
from app.upstream import UpstreamClient
from app.upstream_health import UpstreamHealth
from app.version import VERSION
from app.webhooks import DeliveryTuning, Dispatcher, WebhookTarget
from app.wiring import Runtime

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
    metrics = Metrics()
    # One record of the upstream's health, for readiness and availability alike.
    upstream_health = UpstreamHealth()
    upstream = UpstreamClient(
        str(settings.upstream_url),
        settings.contact_center_id,
        timeout_s=settings.upstream_timeout_s,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        max_connections=settings.upstream_max_connections,
        max_in_flight=settings.upstream_max_in_flight,
        max_body_bytes=settings.upstream_max_body_bytes,
        transport=upstream_transport,
        observe=metrics.observe_upstream,
        health=upstream_health,
    )
    the_bus = bus or make_bus(
        settings.redis_url,
        prefix=settings.redis_prefix,
        retention_s=settings.cache_retention_s,
        subscriber_buffer=settings.sse_buffer_events,
        op_timeout_s=settings.redis_timeout_s,
        failover_wait_s=settings.redis_failover_wait_s,
        holder_ttl_s=settings.stream_count_ttl_s,
        on_error=metrics.bus_error,
        transcripts=TranscriptLimits(
            max_messages=settings.transcript_max_messages,
            max_bytes=settings.transcript_max_bytes,
            budget_bytes=settings.transcript_budget_bytes,
            ended_retention_s=min(settings.ended_retention_s, settings.cache_retention_s),
        ),
        meter=metrics,
        history_half_life_s=settings.poll_history_half_life_s,
    )
    codec = HandleCodec(settings.secret_keys)
    origins = OriginPolicy(settings.allowed_origins)
    stream_tuning = StreamTuning(
        heartbeat_s=settings.sse_heartbeat_s,
        retry_ms=settings.sse_retry_ms,
        send_timeout_s=settings.sse_send_timeout_s,
        drain_spread_s=max(0.0, min(MAX_DRAIN_SPREAD_S, settings.shutdown_grace_s - 1)),
    )
    streams = StreamHub(stream_tuning)
    dispatcher = _dispatcher(settings, the_bus, metrics)
    push_hook: PushHook | None = None
    if dispatcher.accepts(PUSH_KIND):
        push_hook = PushHook(bus=the_bus, dispatcher=dispatcher, held=lambda: registry.held)
    registry = PollerRegistry(
        upstream=upstream,
        bus=the_bus,
        resolve=codec.resolve,
        tuning=PollerTuning(
            budget=Budget(
                reads_per_min=settings.poll_read_budget,
                floor_s=settings.poll_floor_s,
                ceiling_s=settings.poll_ceiling_s,
                keepalive_s=settings.poll_keepalive_s,
                backoff_max_s=settings.poll_backoff_max_s,
            ),
            lease_ttl_s=settings.lease_ttl_s,
            state_refresh_s=settings.state_refresh_s,
        ),
        keepalive=Keepalive(
            background_s=settings.background_keepalive_s,
            unread_s=min(settings.unread_keepalive_s, settings.background_keepalive_s),
            per_client=settings.keepalive_chats_per_client,
        ),
        reader_window_s=settings.reader_window_s,
        fleet=FleetView(the_bus),
        watched=streams.watched,
        on_change=metrics.pollers_changed,
        on_keepalive=metrics.keepalive_asked,
        on_commit=None if push_hook is None else push_hook.after_commit,
    )
    draining = asyncio.Event()
    runtime = Runtime(
        upstream=upstream,
        bus=the_bus,
        registry=registry,
        service=ChatService(
            upstream=upstream,
            bus=the_bus,
            codec=codec,
            registry=registry,
            cold_wait_s=settings.upstream_timeout_s + 2,
            draining=draining,
            reader_window_s=settings.reader_window_s,
            history_limiter=RateLimiter(
                the_bus, "history", settings.history_per_minute, settings.history_burst
            ),
            on_history=metrics.history_reads.inc,
        ),
        metrics=metrics,
        client_address=ClientAddress(
            settings.trusted_proxies, ipv6_prefix_len=settings.ipv6_prefix_len
        ),
        # Fleet-wide through the bus (one limit for N instances); see app/limits.py.
        create_limiter=RateLimiter(
            the_bus, "create-ip", settings.chat_create_per_minute, settings.chat_create_burst
        ),
        send_limiter=RateLimiter(the_bus, "send-ip", settings.send_per_minute, settings.send_burst),
        admission=StreamAdmission(
            capacity=StreamCapacity(settings.max_streams),
            per_chat=ConcurrencyLimiter(the_bus, "streams-chat", settings.max_streams_per_chat),
            per_client=ConcurrencyLimiter(the_bus, "streams-ip", settings.max_streams_per_ip),
            draining=draining,
            meter=metrics,
        ),
        stream_tuning=stream_tuning,
        streams=streams,
        long_poll_max_s=settings.long_poll_max_s,
        offline=OfflineDesk(
            hours=None
            if settings.business_hours is None
            else parse_business_hours(settings.business_hours),
            health=upstream_health,
            dispatcher=dispatcher,
        ),
        draining=draining,
        survey=SurveyDesk(bus=the_bus, dispatcher=dispatcher, registry=metrics.registry),
    )
    metrics.max_streams.set(settings.max_streams)
    widget_url: str | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.loop = asyncio.get_running_loop()
        _log_startup(settings, widget_url)
        registry.start()
        streams.start()
        dispatcher.start()
        watcher = asyncio.create_task(_drain_when_server_exits(runtime), name="exit-watch")
        try:
            yield
        finally:
            watcher.cancel()
            await runtime.finish_drain()
            await dispatcher.aclose()
            await streams.aclose()
            await upstream.aclose()
            await the_bus.aclose()

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
        store=the_bus,
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


def _dispatcher(settings: Settings, bus: Bus, metrics: Metrics) -> Dispatcher:
    """The webhook delivery workers, with a target (and an outbox quota) per configured
    webhook. Each has its own secret (config_hooks refuses a shared one)."""
    targets: dict[str, WebhookTarget] = {}
    if settings.push_webhook_url is not None and settings.push_webhook_secret is not None:
        targets[PUSH_KIND] = WebhookTarget(
            str(settings.push_webhook_url),
            webhook_keys(settings.push_webhook_secret),
            OutboxQuota(settings.push_outbox_max, settings.push_outbox_max_bytes),
            max_age_s=settings.push_max_age_s,
        )
    if settings.offline_webhook_url is not None and settings.offline_webhook_secret is not None:
        targets[OFFLINE_KIND] = WebhookTarget(
            str(settings.offline_webhook_url),
            webhook_keys(settings.offline_webhook_secret),
            OutboxQuota(settings.offline_outbox_max, settings.offline_outbox_max_bytes),
            max_age_s=settings.offline_max_age_s,
        )
    survey_secret = settings.survey_webhook_secret
    if settings.survey_webhook_url is not None and survey_secret is not None:
        targets[SURVEY_KIND] = WebhookTarget(
            str(settings.survey_webhook_url),
            webhook_keys(survey_secret),
            OutboxQuota(settings.survey_outbox_max, settings.survey_outbox_max_bytes),
            max_age_s=settings.survey_max_age_s,
        )
    if targets and settings.redis_url is None:
        log.warning("webhook outbox in memory (no BFF_REDIS_URL): undelivered notices die with it")
    tuning = DeliveryTuning(
        timeout_s=settings.webhook_timeout_s,
        retry_min_s=settings.webhook_retry_min_s,
        retry_max_s=settings.webhook_retry_max_s,
        done_ttl_s=settings.cache_retention_s,
    )
    metrics.outbox_kinds(list(targets))
    return Dispatcher(bus=bus, targets=targets, tuning=tuning, observer=metrics)


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
