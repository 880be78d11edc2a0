"""One chat's SSE stream for one connection: state first, then the transcript after the
client's Last-Event-ID, then live changes, each message exactly once and in index order.

Owns the per-connection delivery rules (gap detection against the cache, resync, interest
refresh, drain on shutdown) and the stream's framing and headers. It must not poll or speak to
the upstream: everything comes from the shared cache and the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.bus.base import Bus, Subscription
from app.errors import BffError
from app.models import ChatEvent, EventKind, Message, UpstreamStatus
from app.registry import PollerRegistry
from app.service import ChatRef, ChatService, chat_json, status_json
from app.transcript import ended_state

STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
# Messages per cache read while replaying a long transcript.
REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class StreamTuning:
    heartbeat_s: float = 15.0
    retry_ms: int = 2000
    send_timeout_s: float = 10.0
    interest_refresh_s: float = 5.0
    drain_spread_s: float = 3.0


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class ChatStream:
    """The events of one connection. `last` is the highest index this connection was given."""

    def __init__(
        self,
        ref: ChatRef,
        last_event_id: int,
        *,
        bus: Bus,
        service: ChatService,
        registry: PollerRegistry,
        tuning: StreamTuning,
        draining: asyncio.Event,
    ) -> None:
        self.shutdown = anyio.Event()
        self.ref = ref
        self.last = last_event_id
        self._bus = bus
        self._service = service
        self._registry = registry
        self._tuning = tuning
        self._draining = draining

    def _message(self, message: Message) -> ServerSentEvent:
        self.last = message.index
        return ServerSentEvent(_dumps(message.body), event="message", id=str(message.index))

    def _state(self, data: dict[str, object]) -> ServerSentEvent:
        return ServerSentEvent(_dumps({"id": self.ref.handle, **data}), event="state")

    async def _catch_up(self) -> AsyncIterator[ServerSentEvent]:
        while True:
            page = await self._bus.messages(self.ref.key, after=self.last, limit=REPLAY_PAGE)
            for message in page:
                if message.index > self.last:
                    yield self._message(message)
            if len(page) < REPLAY_PAGE:
                return

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        retry = int(self._tuning.retry_ms * (1 + random.random() / 2))
        async with self._bus.subscribe(self.ref.key) as subscription:
            record = await self._service.warm(self.ref)
            assert record.state is not None
            state = ended_state(record.state) if record.completed else record.state
            first = ServerSentEvent(_dumps(chat_json(self.ref.handle, state)), event="state")
            first.retry = retry
            yield first
            if record.status is not UpstreamStatus.OK:
                yield ServerSentEvent(_dumps(status_json(record.status)), event="status")
            async for event in self._catch_up():
                yield event
            if record.ended or record.completed:
                yield ServerSentEvent("{}", event="end")
                return
            async for event in self._live(subscription):
                yield event

    async def _live(self, subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
        source = aiter(subscription)
        drained: asyncio.Future[None] = asyncio.ensure_future(self._until_drain())
        pending: asyncio.Future[ChatEvent] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(source))
                waiting: set[asyncio.Future[Any]] = {pending, drained}
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=self._tuning.interest_refresh_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if drained in done:
                    # Spread reconnects so a deploy does not move every client at once, and
                    # ask for a quick one: this instance is going away, not the chat.
                    await asyncio.sleep(random.uniform(0, self._tuning.drain_spread_s))
                    yield ServerSentEvent(
                        comment="reconnect", retry=int(250 + random.random() * 750)
                    )
                    return
                if pending not in done:
                    # A bus hiccup must not end a healthy stream; the next refresh retries.
                    with contextlib.suppress(BffError):
                        await self._registry.interest(self.ref.key, self.ref.handle)
                    continue
                event, pending = pending.result(), None
                async for out in self._deliver(event):
                    yield out
                    if out.event == "end":
                        return
        except StopAsyncIteration:
            return
        finally:
            for future in (pending, drained):
                if future is not None:
                    future.cancel()

    async def _until_drain(self) -> None:
        # Either our own drain (SIGTERM seen by `chat-bff serve`) or the SSE library noticing
        # the server stopping (any uvicorn): whichever comes first.
        waits = [
            asyncio.ensure_future(self._draining.wait()),
            asyncio.ensure_future(self.shutdown.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _deliver(self, event: ChatEvent) -> AsyncIterator[ServerSentEvent]:
        kind = event.kind
        if kind is EventKind.MESSAGE:
            if event.index is None or event.index <= self.last:
                return
            if event.prev is not None and event.prev > self.last:
                # Missed something in between: the cache has it, in order.
                async for out in self._catch_up():
                    yield out
                return
            yield self._message(Message(event.index, event.data))
        elif kind is EventKind.RESYNC:
            record = await self._bus.record(self.ref.key)
            if record.state is not None:
                yield self._state(record.state.to_json())
            async for out in self._catch_up():
                yield out
            if record.ended:
                yield ServerSentEvent("{}", event="end")
        elif kind is EventKind.STATE:
            yield self._state(event.data)
        elif kind is EventKind.STATUS:
            yield ServerSentEvent(_dumps(event.data), event="status")
        elif kind is EventKind.END:
            # Messages committed with the end are already delivered, being earlier in order.
            yield ServerSentEvent("{}", event="end")


def stream_response(
    events: AsyncIterator[ServerSentEvent], stream: ChatStream, tuning: StreamTuning
) -> EventSourceResponse:
    return EventSourceResponse(
        events,
        headers=STREAM_HEADERS,
        ping=int(tuning.heartbeat_s),
        send_timeout=tuning.send_timeout_s,
        shutdown_event=stream.shutdown,
        shutdown_grace_period=tuning.drain_spread_s + 1,
    )
