"""Stream admission through the app, in this process: the per-process cap (`BFF_MAX_STREAMS`,
503), the per-chat and per-client counts (429), a waiting long-poll counted like a stream, and
every count released when the stream ends, however it ends."""

from __future__ import annotations

import asyncio

from app.core.service import ChatRef
from tests.unit.stack import Exchange, Stack, message, stack

ALICE, BOB, CAROL = "198.51.100.1", "198.51.100.2", "198.51.100.3"


async def open_stream(s: Stack, ref: ChatRef, client: str) -> Exchange:
    exchange = Exchange(s.app, f"/api/v2/chats/{ref.handle}/events", client)
    await exchange.open()
    return exchange


async def test_the_per_chat_count_refuses_beyond_its_limit_and_frees_on_disconnect() -> None:
    async with stack(max_streams_per_chat=2) as s:
        ref = s.chat("chat-crowded")
        await s.polled_elsewhere(ref)
        first = await open_stream(s, ref, ALICE)
        second = await open_stream(s, ref, BOB)
        assert (first.status, second.status) == (200, 200)
        refused = await open_stream(s, ref, CAROL)
        assert refused.status == 429
        await refused.finish()
        assert refused.json()["statusCode"] == 3
        other = await open_stream(s, s.chat("chat-other"), CAROL)
        assert other.status == 200  # the limit is per chat
        await first.disconnect()
        again = await open_stream(s, ref, CAROL)
        assert again.status == 200
        for exchange in (second, other, again):
            await exchange.disconnect()


async def test_the_per_client_count_refuses_beyond_its_limit_and_frees_on_disconnect() -> None:
    async with stack(max_streams_per_ip=2) as s:
        refs = [s.chat(f"chat-{n}") for n in range(3)]
        for ref in refs:
            await s.polled_elsewhere(ref)
        first = await open_stream(s, refs[0], ALICE)
        second = await open_stream(s, refs[1], ALICE)
        assert (first.status, second.status) == (200, 200)
        assert (await open_stream(s, refs[2], ALICE)).status == 429
        bob = await open_stream(s, refs[2], BOB)
        assert bob.status == 200  # the limit is per client
        await second.disconnect()
        third = await open_stream(s, refs[2], ALICE)
        assert third.status == 200
        for exchange in (first, bob, third):
            await exchange.disconnect()


async def test_a_client_refused_its_stream_holds_no_place_in_the_chat() -> None:
    async with stack(max_streams_per_ip=1, max_streams_per_chat=1) as s:
        busy, wanted = s.chat("chat-busy"), s.chat("chat-wanted")
        await s.polled_elsewhere(busy)
        await s.polled_elsewhere(wanted)
        held = await open_stream(s, busy, ALICE)
        # Counted in the chat first, then refused for the client: the chat's count goes back.
        assert (await open_stream(s, wanted, ALICE)).status == 429
        bob = await open_stream(s, wanted, BOB)
        assert bob.status == 200
        await held.disconnect()
        await bob.disconnect()


async def test_the_process_cap_is_a_503_and_frees_on_disconnect() -> None:
    async with stack(max_streams=2) as s:
        refs = [s.chat(f"chat-{n}") for n in range(3)]
        for ref in refs:
            await s.polled_elsewhere(ref)
        first = await open_stream(s, refs[0], ALICE)
        second = await open_stream(s, refs[1], BOB)
        assert s.runtime.admission.capacity.open == 2
        refused = await open_stream(s, refs[2], CAROL)
        assert refused.status == 503
        await refused.finish()
        assert refused.json()["statusCode"] == 12
        await first.disconnect()
        assert s.runtime.admission.capacity.open == 1
        third = await open_stream(s, refs[2], CAROL)
        assert third.status == 200
        for exchange in (second, third):
            await exchange.disconnect()
        assert s.runtime.admission.capacity.open == 0


async def test_a_stream_that_ends_by_itself_releases_its_counts() -> None:
    async with stack(max_streams_per_ip=1, max_streams_per_chat=1, max_streams=1) as s:
        ref = s.chat("chat-over")
        fence = await s.polled_elsewhere(ref)
        await s.bus.commit(fence, [message(1)], ended=True)
        for _ in range(3):
            stream = await open_stream(s, ref, ALICE)
            assert stream.status == 200
            await stream.finish()  # state, the transcript, end: the server closes it
            assert b"event: end" in stream.body
        assert s.runtime.admission.capacity.open == 0


async def test_a_waiting_long_poll_counts_against_the_client_like_a_stream() -> None:
    async with stack(max_streams_per_ip=1) as s:
        ref = s.chat("chat-long-poll")
        fence = await s.polled_elsewhere(ref)
        waiting = Exchange(s.app, f"/api/v2/chats/{ref.handle}/messages?index=1&wait=30", ALICE)
        # The answer's head goes out only when a message comes: open it as a task.
        asking = asyncio.create_task(waiting.open())
        async with asyncio.timeout(5):  # a safety net, not a timing assertion
            while not s.runtime.metrics.registry.get_sample_value("bff_long_polls"):
                assert not asking.done(), "answered without waiting"
                await asyncio.sleep(0)
        assert (await open_stream(s, s.chat("chat-other"), ALICE)).status == 429
        await s.bus.commit(fence, [message(1)])
        assert await asking == 200
        await waiting.finish()
        assert [m["index"] for m in waiting.json()["messages"]] == [1]
        stream = await open_stream(s, ref, ALICE)
        assert stream.status == 200
        await stream.disconnect()


async def test_a_draining_instance_takes_no_new_stream() -> None:
    async with stack() as s:
        ref = s.chat("chat-late")
        await s.polled_elsewhere(ref)
        s.runtime.draining.set()
        refused = await open_stream(s, ref, ALICE)
        assert refused.status == 503
        assert s.runtime.admission.capacity.open == 0
