"""`build_runtime()`: the object graph behind the routes, built from the settings in one place.

`create_app` builds its runtime here and puts HTTP around it; tests that need the parts
without HTTP (the pollers on a fake clock) build the same runtime, so no test repeats the
wiring by hand. The upstream transport, the bus, the clock and the random source may be handed
in; everything else follows from the settings. It builds; it must not start anything
(`Runtime.start`, `app/runtime.py`) nor serve HTTP (`main.py`), and nothing here runs at import
time.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx

from app.bus import Bus, TranscriptLimits, make_bus
from app.bus.hooks import OutboxQuota
from app.clock import SYSTEM_CLOCK, Clock, Random
from app.config.hooks import webhook_keys
from app.config.settings import Settings
from app.core.admission import StreamAdmission, StreamCapacity
from app.core.fleet_view import FleetView
from app.core.handles import HandleCodec
from app.core.poller import PollerTuning
from app.core.registry import Keepalive, PollerRegistry
from app.core.schedule import Budget
from app.core.service import ChatService
from app.core.sse import MAX_DRAIN_SPREAD_S, StreamHub, StreamTuning
from app.edge.clients import ClientAddress
from app.edge.limits import ConcurrencyLimiter, RateLimiter
from app.metrics import Metrics
from app.outbox.hours import parse as parse_business_hours
from app.outbox.offline import KIND as OFFLINE_KIND
from app.outbox.offline import OfflineDesk
from app.outbox.push import KIND as PUSH_KIND
from app.outbox.push import PushHook
from app.outbox.survey import KIND as SURVEY_KIND
from app.outbox.survey import SurveyDesk
from app.outbox.webhooks import DeliveryTuning, Dispatcher, WebhookTarget
from app.runtime import Runtime
from app.upstream.client import UpstreamClient
from app.upstream.health import UpstreamHealth

log = logging.getLogger("chat_bff")


def build_runtime(
    settings: Settings,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    bus: Bus | None = None,
    clock: Clock = SYSTEM_CLOCK,
    rand: Random = random.random,
) -> Runtime:
    """Everything behind the routes, from `settings`. `upstream_transport` reaches an
    in-process emulator (the demo, tests); `bus` replaces the one `BFF_REDIS_URL` names;
    `clock` and `rand` are what the pollers, the registry and the webhook workers read the time
    from and draw their jitter from. Nothing starts until `Runtime.start`."""
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
    stream_tuning = StreamTuning(
        heartbeat_s=settings.sse_heartbeat_s,
        retry_ms=settings.sse_retry_ms,
        send_timeout_s=settings.sse_send_timeout_s,
        drain_spread_s=max(0.0, min(MAX_DRAIN_SPREAD_S, settings.shutdown_grace_s - 1)),
    )
    streams = StreamHub(stream_tuning)
    dispatcher = _dispatcher(settings, the_bus, metrics, clock, rand)
    push_hook: PushHook | None = None
    if dispatcher.accepts(PUSH_KIND):
        push_hook = PushHook(
            bus=the_bus, dispatcher=dispatcher, held=lambda: registry.held, clock=clock
        )
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
        fleet=FleetView(the_bus, clock=clock),
        watched=streams.watched,
        on_change=metrics.pollers_changed,
        on_keepalive=metrics.keepalive_asked,
        on_commit=None if push_hook is None else push_hook.after_commit,
        clock=clock,
        rand=rand,
    )
    draining = asyncio.Event()
    metrics.max_streams.set(settings.max_streams)
    return Runtime(
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
        # Fleet-wide through the bus (one limit for N instances); see app/edge/limits.py.
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
        dispatcher=dispatcher,
        codec=codec,
        draining=draining,
        survey=SurveyDesk(bus=the_bus, dispatcher=dispatcher, registry=metrics.registry),
    )


def _dispatcher(
    settings: Settings, bus: Bus, metrics: Metrics, clock: Clock, rand: Random
) -> Dispatcher:
    """The webhook delivery workers, with a target (and an outbox quota) per configured
    webhook. Each has its own secret (config/hooks.py refuses a shared one)."""
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
    return Dispatcher(
        bus=bus, targets=targets, tuning=tuning, observer=metrics, clock=clock, rand=rand
    )
