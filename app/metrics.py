"""Prometheus metrics, in a registry owned by one app (none created at import time).

Labels are route templates, operations and outcomes: never a handle, an id or a raw path.
"""

from __future__ import annotations

import asyncio
import platform

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.registry import Collector

from app.version import VERSION


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "bff_http_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "bff_upstream_requests",
            "Requests sent to the upstream, by operation and outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "bff_upstream_latency_seconds",
            "Upstream request latency",
            ["operation"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.sse_streams = Gauge(
            "bff_sse_streams", "Open SSE streams in this process", registry=self.registry
        )
        self.pollers = Gauge(
            "bff_pollers", "Chats this process polls (holds the lease of)", registry=self.registry
        )
        # -- process health: what must stay flat however long it runs (bench/soak.py) --
        self.asyncio_tasks = Gauge(
            "bff_asyncio_tasks", "asyncio tasks alive in this process", registry=self.registry
        )
        self.asyncio_tasks.set_function(_task_count)

        self._operations()
        self._outbox()

    def _operations(self) -> None:
        """What an operator watches and scales on (see deploy/README.md)."""
        # The process's own figures (memory, CPU, file descriptors), Python's version and the
        # garbage collector's passes: the default collectors, shared by every registry.
        collectors: tuple[Collector, ...] = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)
        for collector in collectors:
            self.registry.register(collector)
        Info("bff_build", "The running build", registry=self.registry).info(
            {"version": VERSION, "python": platform.python_version()}
        )
        self.request_duration = Histogram(
            "bff_http_request_duration_seconds",
            "Time to answer a request, by route template and method (SSE streams excluded)",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.long_polls = Gauge(
            "bff_long_polls",
            "Long-poll reads (wait=S) waiting in this process",
            registry=self.registry,
        )
        self.max_streams = Gauge(
            "bff_sse_streams_max",
            "BFF_MAX_STREAMS: streams this process accepts",
            registry=self.registry,
        )
        self.streams_refused = Counter(
            "bff_sse_streams_refused",
            "Streams refused with 503 because the process held BFF_MAX_STREAMS",
            registry=self.registry,
        )
        self.lease_changes = Counter(
            "bff_lease_changes",
            "Poller leases this process took (acquired) or gave up (released: stopped, lost, "
            "handed over)",
            ["change"],
            registry=self.registry,
        )
        for change in ("acquired", "released"):
            self.lease_changes.labels(change)  # both series exist from the start
        self.bus_errors = Counter(
            "bff_bus_errors",
            "Bus (Redis) operations that failed or timed out",
            registry=self.registry,
        )
        self.dependency_up = Gauge(
            "bff_dependency_up",
            "1 when the last readiness probe reached the dependency (bus, upstream), else 0",
            ["dependency"],
            registry=self.registry,
        )
        self._held = 0
        self._edge()
        self._limits()

    def _edge(self) -> None:
        """What a client can make us hold at the request edge, and refusals at its caps."""
        self.idempotency_entries = Gauge(
            "bff_idempotency_entries",
            "Idempotency-Key answers held: this process's (memory bus) or the fleet's (Redis), "
            "as read at this scrape",
            registry=self.registry,
        )
        self.idempotency_refused = Counter(
            "bff_idempotency_refused",
            "New Idempotency-Keys refused with 429: the client held BFF_IDEMPOTENCY_MAX_PER_CLIENT "
            "entries (client), or the store BFF_IDEMPOTENCY_MAX_ENTRIES answers (total)",
            ["limit"],
            registry=self.registry,
        )
        for limit in ("client", "total"):
            self.idempotency_refused.labels(limit)
        self.idempotency_unkept = Counter(
            "bff_idempotency_unkept",
            "Requests with an Idempotency-Key served without their answer kept: the store held "
            "BFF_IDEMPOTENCY_MAX_ENTRIES answers, their client fewer than "
            "BFF_IDEMPOTENCY_FLOOR_PER_CLIENT entries",
            registry=self.registry,
        )

    def _outbox(self) -> None:
        """The webhook outbox, per kind of notice (`webhooks.DeliveryObserver`)."""
        self.outbox_items = Gauge(
            "bff_outbox_items",
            "Webhook deliveries waiting (fleet-wide on Redis, as this instance's worker last saw)",
            ["kind"],
            registry=self.registry,
        )
        self.outbox_bytes = Gauge(
            "bff_outbox_bytes",
            "Bytes of the webhook deliveries waiting, by kind (as bff_outbox_items)",
            ["kind"],
            registry=self.registry,
        )
        self.outbox_refused = Counter(
            "bff_outbox_refused",
            "Notices refused because their kind held its quota, by kind and limit (items, bytes)",
            ["kind", "limit"],
            registry=self.registry,
        )
        self.outbox_dead_letters = Counter(
            "bff_outbox_dead_letters",
            "Notices removed undelivered, by kind and reason (max_age, unreadable)",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "bff_webhook_deliveries",
            "Delivery attempts of this instance, by kind and outcome (delivered, failed, error)",
            ["kind", "outcome"],
            registry=self.registry,
        )

    def outbox_kinds(self, kinds: list[str]) -> None:
        """The series of each configured kind exist from the start, at 0."""
        for kind in kinds:
            for limit in ("items", "bytes"):
                self.outbox_refused.labels(kind, limit)
            for reason in ("max_age", "unreadable"):
                self.outbox_dead_letters.labels(kind, reason)
            for outcome in ("delivered", "failed", "error"):
                self.webhook_deliveries.labels(kind, outcome)

    def delivery(self, kind: str, outcome: str) -> None:
        self.webhook_deliveries.labels(kind, outcome).inc()

    def dead_letter(self, kind: str, reason: str) -> None:
        self.outbox_dead_letters.labels(kind, reason).inc()

    def refused(self, kind: str, limit: str) -> None:
        self.outbox_refused.labels(kind, limit).inc()

    def held(self, kind: str, items: int, nbytes: int) -> None:
        # Plain figures, not the bus's `OutboxHeld`: metrics sit below every package.
        self.outbox_items.labels(kind).set(items)
        self.outbox_bytes.labels(kind).set(nbytes)

    def _limits(self) -> None:
        """What the caps of issue 18 hold and refuse (docs/SECURITY.md, "Limits")."""
        self.keepalives = Counter(
            "bff_background_keepalive",
            "Background keep-alives asked for a read chat, by outcome: granted, or refused "
            "because its client holds BFF_KEEPALIVE_CHATS_PER_CLIENT (the chat then gets "
            "BFF_UNREAD_KEEPALIVE_S)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("granted", "refused"):
            self.keepalives.labels(outcome)
        self.transcript_bytes = Gauge(
            "bff_transcript_bytes",
            "Bytes of message text in the cached transcripts: this process's (in-memory bus), "
            "or the fleet's as of this instance's last budget flush (Redis)",
            registry=self.registry,
        )
        self.transcript_evictions = Counter(
            "bff_transcript_evicted_messages",
            "Messages dropped from the cached transcripts (readers get them from the upstream): "
            "chat_cap (BFF_TRANSCRIPT_MAX_MESSAGES/_BYTES), budget (BFF_TRANSCRIPT_BUDGET_BYTES)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("chat_cap", "budget"):
            self.transcript_evictions.labels(reason)
        self.history_reads = Counter(
            "bff_history_reads",
            "Reads of messages no longer cached, served from the upstream",
            registry=self.registry,
        )

    def keepalive_asked(self, granted: bool) -> None:
        self.keepalives.labels("granted" if granted else "refused").inc()

    # -- the bus's TranscriptMeter --
    def transcript_held(self, nbytes: int) -> None:
        self.transcript_bytes.set(nbytes)

    def transcript_evicted(self, reason: str, messages: int) -> None:
        if messages:
            self.transcript_evictions.labels(reason).inc(messages)

    # -- admission's AdmissionMeter (app/core/admission.py) --
    def stream_opened(self) -> None:
        self.sse_streams.inc()

    def stream_closed(self) -> None:
        self.sse_streams.dec()

    def stream_refused(self) -> None:
        self.streams_refused.inc()

    def long_poll_waiting(self, delta: int) -> None:
        self.long_polls.inc(delta)

    def pollers_changed(self, held: int) -> None:
        """The registry's count of held leases changed: a lease was taken or given up."""
        delta, self._held = held - self._held, held
        self.pollers.set(held)
        if delta > 0:
            self.lease_changes.labels("acquired").inc(delta)
        elif delta < 0:
            self.lease_changes.labels("released").inc(-delta)

    def bus_error(self) -> None:
        self.bus_errors.inc()

    def observe_upstream(self, operation: str, outcome: str, seconds: float) -> None:
        self.upstream_requests.labels(operation, outcome).inc()
        if seconds:
            self.upstream_latency.labels(operation).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected outside the event loop
        return 0.0
