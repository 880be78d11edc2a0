"""Stream admission: whether this instance takes one more held connection (an SSE stream or a
waiting long-poll), and giving back every place it took.

Owns, in the order a stream meets them: the drain (503 while this instance shuts down), the
process's cap on streams (`BFF_MAX_STREAMS`: 503 + Retry-After, load shedding, so a load
balancer tries another instance), the fleet-wide counts of streams per chat and per client
key (429, counted by the bus through `limits.ConcurrencyLimiter`), what they report (open
streams, refusals at the cap, long-polls waiting) and the release of each place exactly once,
however the connection ends. A waiting long-poll is a held connection like a stream: it counts
against the same per-client cap. It must not know HTTP beyond the errors it raises, nor serve
a stream (`sse.py`), nor count anything but held connections.

Memory grows with open streams while CPU hardly does: without the process cap an instance
would be OOM-killed before an autoscaler on CPU adds one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from app.edge.limits import ConcurrencyLimiter
from app.errors import OverloadedError, UpstreamUnavailableError

# Retry-After of a refusal at the process cap: a stream usually ends within seconds somewhere.
FULL_RETRY_AFTER_S = 2
# Retry-After while draining: the load balancer has another instance for it by then.
DRAINING_RETRY_AFTER_S = 1


class AdmissionMeter(Protocol):
    """What admission reports (`metrics.Metrics` implements it). Each call is cheap, never
    raises, and is made exactly once per event: a stream that opened is closed once."""

    def stream_opened(self) -> None:
        """An admitted stream's answer started (the `bff_sse_streams` gauge goes up)."""
        ...

    def stream_closed(self) -> None:
        """A stream that opened has ended, however it ended."""
        ...

    def stream_refused(self) -> None:
        """A stream refused at the process cap (`BFF_MAX_STREAMS`), not at a per-key limit."""
        ...

    def long_poll_waiting(self, delta: int) -> None:
        """+1 when an admitted long-poll starts waiting, -1 when it stops."""
        ...


class StreamCapacity:
    """The count of this process's streams against `limit`. Streams admitted together may
    pass `full` together: the cap is a memory guard, not an exact count."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def enter(self) -> None:
        self.open += 1

    def leave(self) -> None:
        self.open = max(0, self.open - 1)


class StreamPass:
    """The places one admitted stream holds: one in the process's count, one in its chat's and
    one in its client's. `opened()` once its answer has started; `release()` gives everything
    back. `release` is idempotent, never raises and never blocks: safe in a `finally` and as
    the response's close callback, whichever comes first."""

    __slots__ = ("_admission", "_chat", "_client", "_opened", "_released")

    def __init__(self, admission: StreamAdmission, chat: str, client: str) -> None:
        self._admission = admission
        self._chat = chat
        self._client = client
        self._opened = False
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def opened(self) -> None:
        if self._opened or self._released:
            return
        self._opened = True
        self._admission.meter.stream_opened()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        admission = self._admission
        if self._opened:
            admission.meter.stream_closed()
        admission.capacity.leave()
        admission.per_client.release(self._client)
        admission.per_chat.release(self._chat)


class StreamAdmission:
    """The one gate of held connections. `admit_stream` takes every place a stream needs or
    none (a refusal gives back what it had taken); `long_poll` holds the client's place while
    a long-poll waits."""

    def __init__(
        self,
        *,
        capacity: StreamCapacity,
        per_chat: ConcurrencyLimiter,
        per_client: ConcurrencyLimiter,
        draining: asyncio.Event,
        meter: AdmissionMeter,
    ) -> None:
        self.capacity = capacity
        self.per_chat = per_chat
        self.per_client = per_client
        self.meter = meter
        self._draining = draining

    def refuse_if_draining(self) -> None:
        """UpstreamUnavailableError (503) once this instance has begun to shut down: a client
        reconnects elsewhere."""
        if self._draining.is_set():
            raise UpstreamUnavailableError(
                "This instance is shutting down", retry_after_s=DRAINING_RETRY_AFTER_S
            )

    async def admit_stream(self, chat: str, client: str) -> StreamPass:
        """Count one stream of chat key `chat` for client key `client`, or raise and hold
        nothing: OverloadedError (503) at the process cap, checked first so a full instance
        costs the bus nothing; RateLimitedError (429) at the chat's or the client's limit; a
        bus error as it comes. The pass must be released (`StreamPass.release`)."""
        if self.capacity.full:
            self.meter.stream_refused()
            raise OverloadedError(retry_after_s=FULL_RETRY_AFTER_S)
        await self.per_chat.acquire(chat)
        try:
            await self.per_client.acquire(client)
        except BaseException:
            # Refused for the client (or cancelled): the chat's place goes back.
            self.per_chat.release(chat)
            raise
        self.capacity.enter()
        return StreamPass(self, chat, client)

    @asynccontextmanager
    async def long_poll(self, client: str) -> AsyncIterator[None]:
        """Hold `client`'s place while the body waits: RateLimitedError (429) at the client's
        limit, before anything waits. The place is given back however the body ends."""
        await self.per_client.acquire(client)
        try:
            self.meter.long_poll_waiting(1)
            try:
                yield
            finally:
                self.meter.long_poll_waiting(-1)
        finally:
            self.per_client.release(client)
