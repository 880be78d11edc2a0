"""Liveness, readiness and metrics endpoints for load balancers and Prometheus.

Thin: readiness reads the upstream's health (`upstream.health.UpstreamHealth`: a recent answer
says enough) and otherwise waits briefly for the client's shared probe; it never calls the
upstream itself nor records what it learnt (the client does).
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from app.api.openapi import RETRY_AFTER
from app.errors import BffError
from app.routes.deps import RuntimeDep

router = APIRouter(tags=["operations"])

# A readiness check waits this long for the shared probe, then says "unavailable": load
# balancers time their checks out after a few seconds, and a hanging upstream must not make
# this instance look dead (readiness stays 200 on upstream trouble, see below).
_PROBE_WAIT_S = 2.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


_READINESS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "degraded", "full", "draining"]},
        "bus": {"type": "string", "enum": ["ok", "unavailable"]},
        "upstream": {"type": "string", "enum": ["ok", "unavailable"]},
        "streams": {"type": "integer", "description": "Open SSE streams in this process"},
        "maxStreams": {"type": "integer", "description": "BFF_MAX_STREAMS"},
    },
    "required": ["status"],
}


@router.get(
    "/readyz",
    summary="Readiness: this instance takes new requests",
    description=(
        "503 while this instance drains (shutdown) or holds `BFF_MAX_STREAMS` streams: only "
        "this instance leaves the load balancer. The bus and the upstream are shared by every "
        "instance, so their trouble is reported in the body (`degraded`, and "
        "`bff_dependency_up`) with a 200: were readiness to fail on them, every instance would "
        "leave at once and the load balancer would answer its own errors instead of ours with "
        "`Retry-After`."
    ),
    responses={
        200: {"content": {"application/json": {"schema": _READINESS}}},
        503: {
            "description": "Full (BFF_MAX_STREAMS), or draining for a shutdown",
            "headers": RETRY_AFTER,
            "content": {"application/json": {"schema": _READINESS}},
        },
    },
)
async def readyz(rt: RuntimeDep) -> JSONResponse:
    if rt.draining.is_set():
        return JSONResponse({"status": "draining"}, status_code=503, headers={"Retry-After": "5"})
    bus_ok = await rt.bus.ping()
    upstream = rt.upstream
    upstream_ok = upstream.health.answered_recently() or await upstream.probe(wait_s=_PROBE_WAIT_S)
    rt.metrics.dependency_up.labels("bus").set(1 if bus_ok else 0)
    rt.metrics.dependency_up.labels("upstream").set(1 if upstream_ok else 0)
    capacity = rt.admission.capacity
    full = capacity.full
    body = {
        "status": "full" if full else "ready" if bus_ok and upstream_ok else "degraded",
        "bus": "ok" if bus_ok else "unavailable",
        "upstream": "ok" if upstream_ok else "unavailable",
        "streams": capacity.open,
        "maxStreams": capacity.limit,
    }
    headers = {"Cache-Control": "no-store"}
    if full:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=503 if full else 200, headers=headers)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(rt: RuntimeDep) -> Response:
    # Read at the scrape: the store is the bus's (the fleet's, on Redis), and it shrinks by
    # expiry, which no request would report. Without the bus, the last figure stands.
    with contextlib.suppress(BffError):
        rt.metrics.idempotency_entries.set(await rt.bus.idempotency_size())
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4")
