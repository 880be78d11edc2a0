"""The runtime object graph `create_app` builds, as one typed value on `app.state.runtime`,
and the drain that starts a graceful shutdown.

Holds references; it starts nothing but the drain task it owns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.admission import StreamAdmission
from app.bus import Bus
from app.limits import RateLimiter
from app.metrics import Metrics
from app.offline import OfflineDesk
from app.registry import PollerRegistry
from app.security import ClientAddress
from app.service import ChatService
from app.sse import StreamHub, StreamTuning
from app.survey import SurveyDesk
from app.upstream import UpstreamClient


@dataclass(slots=True)
class Runtime:
    upstream: UpstreamClient
    bus: Bus
    registry: PollerRegistry
    service: ChatService
    metrics: Metrics
    client_address: ClientAddress
    create_limiter: RateLimiter
    send_limiter: RateLimiter
    # Streams and waiting long-polls: the drain, BFF_MAX_STREAMS, the per-chat and per-client
    # counts (app/admission.py).
    admission: StreamAdmission
    stream_tuning: StreamTuning
    streams: StreamHub
    long_poll_max_s: float
    offline: OfflineDesk
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    drain_task: asyncio.Task[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    # -- post-chat surveys (app/survey.py) --
    survey: SurveyDesk | None = None

    def request_drain(self) -> None:
        """Thread- and signal-safe: schedule `begin_drain` on the serving loop."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.begin_drain)

    def begin_drain(self) -> None:
        """Stop taking streams, tell open ones to reconnect elsewhere (spread out), and hand
        every poller over. Idempotent; must run on the event loop."""
        if self.draining.is_set():
            return
        self.draining.set()
        self.streams.drain()
        self.drain_task = asyncio.get_running_loop().create_task(self.registry.drain())

    async def finish_drain(self) -> None:
        self.begin_drain()
        if self.drain_task is not None:
            await self.drain_task
