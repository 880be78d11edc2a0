"""One chat's SSE stream for one connection: state first, then the transcript after the
client's Last-Event-ID, then live changes, each message exactly once and in index order.

Owns the per-connection delivery rules (gap detection against the cache, resync, drain) and
the stream's transport. The transport is a small ASGI response rather than sse-starlette's:
that one runs four tasks and a timer per connection, which alone costs more memory and
heartbeat CPU per idle stream than our targets allow. Here a stream is one waiter on its bus
subscription plus one disconnect listener; heartbeats, drains and disconnects arrive through
the same subscription as wake-up markers (`StreamHub`). sse-starlette still frames the events.
It must not poll or speak to the upstream: everything comes from the shared cache and the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from sse_starlette import ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.bus.chats import ChatCache
from app.bus.fanout import FanOut, Subscription
from app.core.service import ChatService, chat_json
from app.edge.serving import ABORT_EXTENSION
from app.errors import BffError, ChatNotFoundError, describe_exception
from app.events import CLOSE, DRAIN, HEARTBEAT, SSE_KINDS, ChatEvent, EventKind, status_data
from app.models import ChatRef, ChatState, TranscriptEntry, UpstreamStatus
from app.upstream.transcript import ended_state

log = logging.getLogger("chat_bff.sse")

STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # Not storable by anyone (a shared cache may store a `no-cache` answer), and never
    # transformed (compressed or buffered) on the way.
    (b"cache-control", b"no-cache, no-store, no-transform"),
    (b"x-accel-buffering", b"no"),
]
# Messages per cache read while replaying a long transcript.
REPLAY_PAGE = 500
HEARTBEAT_SLICES = 10
PING = b": ping\n\n"


# The longest the drain spreads the streams' ends over (less when the shutdown grace is short).
MAX_DRAIN_SPREAD_S = 3.0


@dataclass(frozen=True, slots=True)
class StreamTuning:
    """The defaults are those of the BFF_SSE_* settings (app/config/parts.py reads them)."""

    heartbeat_s: float = 15.0
    retry_ms: int = 2000
    send_timeout_s: float = 10.0
    drain_spread_s: float = MAX_DRAIN_SPREAD_S


DEFAULT_TUNING = StreamTuning()


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _frame(event: ServerSentEvent) -> bytes:
    return event.encode()


class StreamHub:
    """The open streams of this process: one heartbeat ticker for all of them, the chats they
    watch (so interest is refreshed per chat, not per stream), and the drain."""

    def __init__(self, tuning: StreamTuning) -> None:
        self._tuning = tuning
        self._streams: dict[Subscription, tuple[ChatRef, str]] = {}
        # Heartbeats go out in slices spread over the period, not to every stream at once: a
        # burst of thousands of writes would hold up every poll and message for tens of ms.
        self._slices: list[set[Subscription]] = [set() for _ in range(HEARTBEAT_SLICES)]
        self._slice_of: dict[Subscription, int] = {}
        self._next_slice = 0
        self._ticker: asyncio.Task[None] | None = None
        self.draining = False

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="sse-heartbeats")

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    def add(self, subscription: Subscription, ref: ChatRef, client: str) -> None:
        self._streams[subscription] = (ref, client)
        slot = self._next_slice = (self._next_slice + 1) % HEARTBEAT_SLICES
        self._slices[slot].add(subscription)
        self._slice_of[subscription] = slot
        if self.draining:
            subscription.wake(DRAIN)

    def discard(self, subscription: Subscription) -> None:
        self._streams.pop(subscription, None)
        slot = self._slice_of.pop(subscription, None)
        if slot is not None:
            self._slices[slot].discard(subscription)

    def __len__(self) -> int:
        return len(self._streams)

    def watched(self) -> dict[str, tuple[ChatRef, str]]:
        """Chat key -> (the chat, client key of one of its streams) of every chat with a
        stream open here."""
        return {ref.key: (ref, client) for ref, client in self._streams.values()}

    def drain(self) -> None:
        """Close every stream, each after a random delay within the drain window, so clients
        do not all reconnect in the same instant."""
        self.draining = True
        loop = asyncio.get_running_loop()
        for subscription in list(self._streams):
            delay = random.uniform(0, self._tuning.drain_spread_s)
            loop.call_later(delay, subscription.wake, DRAIN)

    async def _tick(self) -> None:
        slot = 0
        while True:
            await asyncio.sleep(self._tuning.heartbeat_s / HEARTBEAT_SLICES)
            slot = (slot + 1) % HEARTBEAT_SLICES
            for subscription in list(self._slices[slot]):
                subscription.wake(HEARTBEAT)


class StreamBus(ChatCache, FanOut, Protocol):
    """What a stream uses of the bus: the chat's subscription, and its record after a RESYNC;
    the transcript it reads through the `ChatService`."""


class ChatStream:
    """The frames of one connection. `last` is the highest index this connection was given."""

    def __init__(
        self,
        ref: ChatRef,
        last_event_id: int,
        *,
        client: str,
        bus: StreamBus,
        service: ChatService,
        hub: StreamHub,
        tuning: StreamTuning,
    ) -> None:
        self.ref = ref
        self.last = last_event_id
        self.client = client
        self._bus = bus
        self._service = service
        self._hub = hub
        self._tuning = tuning
        self._subscription: Subscription | None = None
        self._ended = False

    def _end(self) -> bytes:
        self._ended = True
        return _frame(ServerSentEvent("{}", event=EventKind.END))

    def disconnected(self) -> None:
        if self._subscription is not None:
            self._subscription.wake(CLOSE)

    def _message(self, message: TranscriptEntry) -> bytes:
        self.last = message.index
        return _frame(ServerSentEvent(message.raw, event=EventKind.MESSAGE, id=str(message.index)))

    def _state(self, data: dict[str, object]) -> bytes:
        return _frame(
            ServerSentEvent(_dumps({"id": self.ref.handle, **data}), event=EventKind.STATE)
        )

    def _plain(self, kind: EventKind, data: dict[str, object]) -> bytes:
        return _frame(ServerSentEvent(_dumps(data), event=kind))

    async def _catch_up(self) -> AsyncIterator[bytes]:
        while True:
            # From the cache, and what it no longer holds from the upstream: none missing.
            page = await self._service.read(
                self.ref, self.last, client=self.client, limit=REPLAY_PAGE
            )
            for message in page:
                if message.index > self.last:
                    yield self._message(message)
            if len(page) < REPLAY_PAGE:
                return

    async def frames(self) -> AsyncIterator[bytes]:
        retry = int(self._tuning.retry_ms * (1 + random.random() / 2))
        async with self._bus.subscribe(self.ref.key) as subscription:
            self._subscription = subscription
            self._hub.add(subscription, self.ref, self.client)
            try:
                try:
                    record = await self._service.warm(self.ref, client=self.client)
                except ChatNotFoundError:
                    # The upstream no longer knows the chat: it is over, for this stream too.
                    yield self._state(ChatState("Idle").to_json())
                    yield self._end()
                    return
                assert record.state is not None
                state = ended_state(record.state) if record.completed else record.state
                yield _frame(
                    ServerSentEvent(
                        _dumps(chat_json(self.ref.handle, state)),
                        event=EventKind.STATE,
                        retry=retry,
                    )
                )
                if record.status is not UpstreamStatus.OK:
                    yield self._plain(EventKind.STATUS, status_data(record.status))
                async for frame in self._catch_up():
                    yield frame
                if record.ended or record.completed:
                    yield self._end()
                    return
                async for event in subscription:
                    if event.kind is EventKind.CLOSE:
                        return
                    if event.kind is EventKind.DRAIN:
                        # This instance is going away, not the chat: come back soon, elsewhere.
                        jitter = int(250 + random.random() * 750)
                        yield _frame(ServerSentEvent(comment="reconnect", retry=jitter))
                        return
                    if event.kind is EventKind.HEARTBEAT:
                        yield PING
                        continue
                    async for frame in self._deliver(event):
                        yield frame
                    if self._ended:
                        return
            finally:
                self._hub.discard(subscription)
                self._subscription = None

    async def _deliver(self, event: ChatEvent) -> AsyncIterator[bytes]:
        kind = event.kind
        if kind is EventKind.MESSAGE:
            if event.index is None or event.index <= self.last:
                return
            if event.prev is not None and event.prev > self.last:
                # Missed something in between: the cache has it, in order.
                async for frame in self._catch_up():
                    yield frame
                return
            yield self._message(event.message)
        elif kind is EventKind.RESYNC:
            record = await self._bus.record(self.ref.key)
            if record.state is not None:
                yield self._state(record.state.to_json())
            async for frame in self._catch_up():
                yield frame
            if record.ended:
                yield self._end()
        elif kind is EventKind.STATE:
            yield self._state(event.data)
        elif kind is EventKind.END:
            # Messages committed with the end are already delivered, being earlier in order.
            yield self._end()
        elif kind in SSE_KINDS:
            # Any other kind for clients (`status`, and those added later): its data as it is.
            yield self._plain(kind, event.data)


class _StalledError(Exception):
    """A write to the client missed its deadline."""


class EventStreamResponse(Response):
    """A `text/event-stream` response: writes each frame with a deadline (a client that stops
    reading is dropped, not waited for) and reports the client leaving."""

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterator[bytes] | None = None,
        *,
        on_disconnect: Callable[[], None] = lambda: None,
        on_open: Callable[[], None] = lambda: None,
        on_close: Callable[[], None] = lambda: None,
        send_timeout_s: float = DEFAULT_TUNING.send_timeout_s,
    ) -> None:
        super().__init__(status_code=200)
        self._frames = frames
        self._on_open = on_open
        self._on_close = on_close
        self._on_disconnect = on_disconnect
        self._send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._frames is not None
        listener = asyncio.ensure_future(self._listen(receive))
        self._on_open()
        try:
            await self._send(
                send, {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
            )
            try:
                async for frame in self._frames:
                    await self._send(
                        send, {"type": "http.response.body", "body": frame, "more_body": True}
                    )
            except _StalledError:
                raise
            except BffError as error:
                # The bus or the upstream failed mid-stream: end it cleanly, the client
                # reconnects (with its Last-Event-ID) and gets a fresh start.
                log.info("SSE stream ended early: %s", type(error).__name__)
            except Exception as error:
                log.error("SSE stream failed: %s", describe_exception(error))
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        except _StalledError:
            log.info("dropped an SSE client that stopped reading")
            await self._drop(scope, listener)
        finally:
            self._on_close()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            aclose = getattr(self._frames, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send(self, send: Send, message: MutableMapping[str, Any]) -> None:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await send(message)
        except TimeoutError:
            raise _StalledError() from None

    async def _drop(self, scope: Scope, listener: asyncio.Future[None]) -> None:
        """Close the connection of a client that stopped reading, and return only once it is
        gone: what the stream counts (per IP, per chat) must stay counted while its socket and
        send buffer exist. A server's graceful close would wait for that client to read."""
        abort = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
        if not callable(abort):
            return  # a server without the extension closes the connection itself
        abort()
        await asyncio.wait({listener}, timeout=self._send_timeout_s)

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._on_disconnect()
