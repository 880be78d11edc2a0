"""One connection's SSE stream (`app.core.sse.ChatStream`), driven frame by frame in this process
over the memory bus: replay after Last-Event-ID, then live events, each message once and in
index order through duplicates, gaps and resyncs; the end; the drain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.bus import MemoryBus
from app.core.service import ChatRef
from app.core.sse import ChatStream
from app.events import ChatEvent, EventKind
from app.models import ChatState, UpstreamStatus
from tests.unit.stack import CHATTING, Stack, message, stack

CLIENT = "198.51.100.9"


@dataclass(frozen=True)
class Frame:
    event: str | None
    id: str | None
    data: Any
    retry: int | None
    comment: str | None


def parse(raw: bytes) -> Frame:
    fields: dict[str, str] = {}
    comment = None
    for line in raw.decode().splitlines():
        if line.startswith(":"):
            comment = line[1:].strip()
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    data = json.loads(fields["data"]) if "data" in fields else None
    retry = int(fields["retry"]) if "retry" in fields else None
    return Frame(fields.get("event"), fields.get("id"), data, retry, comment)


class Reader:
    """The frames of one stream, read one at a time like its connection would send them."""

    def __init__(self, stream: ChatStream) -> None:
        self.stream = stream
        self._frames: AsyncIterator[bytes] = stream.frames()

    async def next(self) -> Frame:
        # A safety net for a broken stream that never yields, not a timing assertion.
        async with asyncio.timeout(5):
            return parse(await anext(self._frames))

    async def messages(self, count: int) -> list[int]:
        found = []
        for _ in range(count):
            frame = await self.next()
            assert frame.event == "message", frame
            assert frame.id == str(frame.data["index"])
            found.append(frame.data["index"])
        return found

    async def ended(self) -> bool:
        try:
            await self.next()
        except StopAsyncIteration:
            return True
        return False

    async def aclose(self) -> None:
        await self._frames.aclose()  # type: ignore[attr-defined]


def reader(s: Stack, ref: ChatRef, last_event_id: int = 0) -> Reader:
    rt = s.runtime
    return Reader(
        ChatStream(
            ref,
            last_event_id,
            client=CLIENT,
            bus=rt.bus,
            service=rt.service,
            hub=rt.streams,
            tuning=rt.stream_tuning,
        )
    )


async def test_the_transcript_after_last_event_id_then_live_messages() -> None:
    async with stack() as s:
        ref = s.chat("chat-replay")
        fence = await s.polled_elsewhere(ref)
        await s.bus.commit(fence, [message(1), message(2), message(3)])
        r = reader(s, ref, last_event_id=1)
        first = await r.next()
        assert first.event == "state"
        assert first.data["state"] == "Chatting" and first.data["id"] == ref.handle
        assert first.retry is not None
        assert await r.messages(2) == [2, 3]
        await s.bus.commit(fence, [message(4)])
        assert await r.messages(1) == [4]
        await r.aclose()


async def test_a_message_both_replayed_and_announced_is_sent_once() -> None:
    async with stack() as s:
        ref = s.chat("chat-duplicate")
        fence = await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        # Committed after the stream subscribed and before its replay: the replay reads it
        # from the cache, and its live event arrives after that.
        await s.bus.commit(fence, [message(1)])
        assert await r.messages(1) == [1]
        await s.bus.commit(fence, [message(2)])
        assert await r.messages(1) == [2]
        await r.aclose()


async def test_a_gap_is_filled_from_the_cache_in_order() -> None:
    async with stack() as s:
        ref = s.chat("chat-gap")
        fence = await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        await s.bus.commit(fence, [message(1)])
        assert await r.messages(1) == [1]
        # The memory bus loses no event, so the one a Redis subscriber gets after pub/sub lost
        # message 2's is handed to this stream's subscription: message 3, which follows 2.
        subscription = r.stream._subscription
        assert subscription is not None
        three = message(3)
        subscription.wake(ChatEvent(EventKind.MESSAGE, three.body, index=3, prev=2, raw=three.raw))
        await s.bus.commit(fence, [message(2), three])
        assert await r.messages(2) == [2, 3]
        await s.bus.commit(fence, [message(4)])
        assert await r.messages(1) == [4]
        await r.aclose()


async def test_a_resync_sends_the_state_and_every_message_missed() -> None:
    async with stack(bus=MemoryBus(subscriber_buffer=2)) as s:
        ref = s.chat("chat-resync")
        fence = await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        await s.bus.commit(fence, [message(1)])
        assert await r.messages(1) == [1]
        # More than the subscriber's buffer in one go: it drops them for one resync marker.
        waiting = ChatState("Waiting")
        await s.bus.commit(fence, [message(i) for i in range(2, 7)], state=waiting)
        state = await r.next()
        assert (state.event, state.data["state"]) == ("state", "Waiting")
        assert await r.messages(5) == [2, 3, 4, 5, 6]
        await s.bus.commit(fence, [message(7)])
        assert await r.messages(1) == [7]
        await r.aclose()


async def test_a_resync_that_finds_the_chat_ended_ends_the_stream() -> None:
    async with stack(bus=MemoryBus(subscriber_buffer=2)) as s:
        ref = s.chat("chat-resync-end")
        fence = await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        await s.bus.commit(fence, [message(1)])
        assert await r.messages(1) == [1]
        # The end is among what the overflow dropped: only the resync can tell.
        await s.bus.commit(fence, [message(i) for i in range(2, 7)], ended=True)
        assert (await r.next()).event == "state"
        assert await r.messages(5) == [2, 3, 4, 5, 6]
        assert (await r.next()).event == "end"
        assert await r.ended()


async def test_the_end_is_sent_after_the_messages_and_closes_the_stream() -> None:
    async with stack() as s:
        ref = s.chat("chat-end")
        fence = await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        await s.bus.commit(fence, [message(1)], ended=True)
        assert await r.messages(1) == [1]
        end = await r.next()
        assert (end.event, end.data) == ("end", {})
        assert await r.ended()


async def test_a_stream_of_an_ended_chat_replays_and_ends_at_once() -> None:
    async with stack() as s:
        ref = s.chat("chat-over")
        fence = await s.polled_elsewhere(ref)
        await s.bus.commit(fence, [message(1), message(2)], ended=True)
        r = reader(s, ref)
        state = await r.next()
        assert state.event == "state"
        assert await r.messages(2) == [1, 2]
        assert (await r.next()).event == "end"
        assert await r.ended()


async def test_a_status_change_is_sent_as_it_comes() -> None:
    async with stack() as s:
        ref = s.chat("chat-status")
        fence = await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        await s.bus.commit(fence, state=CHATTING, status=UpstreamStatus.DEGRADED)
        status = await r.next()
        assert (status.event, status.data) == ("status", {"upstream": "degraded"})
        await r.aclose()


async def test_a_drain_tells_the_client_to_come_back_soon_and_closes() -> None:
    # A grace of 1 s leaves no drain spread: each stream is told at once.
    async with stack(shutdown_grace_s=1) as s:
        ref = s.chat("chat-drain")
        await s.polled_elsewhere(ref)
        r = reader(s, ref)
        assert (await r.next()).event == "state"
        s.runtime.streams.drain()
        frame = await r.next()
        assert frame.comment == "reconnect"
        assert frame.retry is not None and 250 <= frame.retry < 1000
        assert await r.ended()
        assert len(s.runtime.streams) == 0
        # A stream opened while draining is told the same at its first wait.
        late = reader(s, ref)
        assert (await late.next()).event == "state"
        assert (await late.next()).comment == "reconnect"
        assert await late.ended()
