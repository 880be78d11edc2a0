"""`Runtime`: the object graph `build_runtime` builds (`app/build.py`), as one typed value on
`app.state.runtime`: what it starts and closes, and the drain that starts a graceful shutdown.

Holds references; it starts nothing before `start`, and owns nothing but the drain task.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.bus import Bus
from app.core.admission import StreamAdmission
from app.core.handles import HandleCodec
from app.core.registry import PollerRegistry
from app.core.service import ChatService
from app.core.sse import StreamHub, StreamTuning
from app.edge.clients import ClientAddress
from app.edge.limits import RateLimiter
from app.metrics import Metrics
from app.outbox.offline import OfflineDesk
from app.outbox.survey import SurveyDesk
from app.outbox.webhooks import Dispatcher
from app.upstream.client import UpstreamClient


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
    # counts (app/core/admission.py).
    admission: StreamAdmission
    stream_tuning: StreamTuning
    streams: StreamHub
    long_poll_max_s: float
    offline: OfflineDesk
    # -- the webhook delivery workers (app/outbox/webhooks.py), started and closed with the rest --
    dispatcher: Dispatcher
    # -- the handles' seal, as the service uses it (tests issue chats with it) --
    codec: HandleCodec
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    drain_task: asyncio.Task[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    # -- post-chat surveys (app/outbox/survey.py) --
    survey: SurveyDesk | None = None

    def start(self) -> None:
        """Start the background work: the registry's sweeps and renewals (and with them the
        pollers), the streams' heartbeat ticker, the webhook workers. On the serving loop."""
        self.loop = asyncio.get_running_loop()
        self.registry.start()
        self.streams.start()
        self.dispatcher.start()

    async def aclose(self) -> None:
        """Drain (pollers handed over, streams told to go), then stop what `start` started and
        close the upstream client and the bus."""
        await self.finish_drain()
        await self.dispatcher.aclose()
        await self.streams.aclose()
        await self.upstream.aclose()
        await self.bus.aclose()

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
