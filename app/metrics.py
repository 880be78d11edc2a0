"""Prometheus metrics, in a registry owned by one app (none created at import time)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
