"""`StreamAdmission` by itself, over the in-process bus: each cap admits up to its limit and
refuses past it with its own error (503 at the process cap, 429 at the chat's or the client's
count), a refusal holds nothing, and every place comes back exactly once on every way a held
connection ends (the stream's answer done, failed, the client gone or stalled; a long-poll
answered, failed or cancelled). No app, no server: each test runs in milliseconds.
(`test_admission.py` shows the same rules through the app's routes.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.bus import MemoryBus
from app.core.admission import StreamAdmission, StreamCapacity, StreamPass
from app.core.sse import EventStreamResponse
from app.edge.limits import ConcurrencyLimiter
from app.errors import (
    BusUnavailableError,
    OverloadedError,
    RateLimitedError,
    UpstreamUnavailableError,
    error_response,
)
from app.metrics import Metrics

CHAT, OTHER_CHAT = "chat-a", "chat-b"
ALICE, BOB, CAROL = "alice", "bob", "carol"


def gate(
    *, streams: int = 100, per_chat: int = 100, per_client: int = 100
) -> tuple[StreamAdmission, Metrics, asyncio.Event]:
    bus, metrics, draining = MemoryBus(), Metrics(), asyncio.Event()
    admission = StreamAdmission(
        capacity=StreamCapacity(streams),
        per_chat=ConcurrencyLimiter(bus, "streams-chat", per_chat),
        per_client=ConcurrencyLimiter(bus, "streams-ip", per_client),
        draining=draining,
        meter=metrics,
    )
    return admission, metrics, draining


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def test_the_process_cap_admits_up_to_it_then_refuses_with_a_503() -> None:
    admission, metrics, _ = gate(streams=2)
    first = await admission.admit_stream(CHAT, ALICE)
    await admission.admit_stream(OTHER_CHAT, BOB)
    assert admission.capacity.full and admission.capacity.open == 2
    with pytest.raises(OverloadedError) as refused:
        await admission.admit_stream(CHAT, CAROL)
    assert error_response(refused.value).status_code == 503
    assert refused.value.retry_after_s == 2
    assert sample(metrics, "bff_sse_streams_refused_total") == 1
    first.release()
    assert not admission.capacity.full
    await admission.admit_stream(CHAT, CAROL)


async def test_a_refusal_at_the_process_cap_takes_no_place_in_the_chat_or_the_client() -> None:
    admission, _, _ = gate(streams=1, per_chat=1, per_client=1)
    held = await admission.admit_stream(CHAT, ALICE)
    with pytest.raises(OverloadedError):
        await admission.admit_stream(OTHER_CHAT, BOB)
    held.release()
    # Had the refusal counted BOB or the other chat, these would be 429s now.
    await admission.admit_stream(OTHER_CHAT, BOB)


async def test_the_per_chat_count_admits_up_to_its_limit_then_refuses_with_a_429() -> None:
    admission, _, _ = gate(per_chat=2)
    first = await admission.admit_stream(CHAT, ALICE)
    await admission.admit_stream(CHAT, BOB)
    with pytest.raises(RateLimitedError, match="Too many open streams") as refused:
        await admission.admit_stream(CHAT, CAROL)
    assert error_response(refused.value).status_code == 429
    assert refused.value.retry_after_s == 5
    assert admission.capacity.open == 2  # the refused one is not counted in the process
    await admission.admit_stream(OTHER_CHAT, CAROL)  # the limit is per chat
    first.release()
    await admission.admit_stream(CHAT, CAROL)


async def test_the_per_client_count_refuses_with_a_429_and_gives_the_chat_place_back() -> None:
    admission, _, _ = gate(per_chat=1, per_client=1)
    held = await admission.admit_stream(CHAT, ALICE)
    with pytest.raises(RateLimitedError):
        await admission.admit_stream(OTHER_CHAT, ALICE)
    assert admission.capacity.open == 1
    # Counted in the other chat first, then refused for the client: that place went back.
    other = await admission.admit_stream(OTHER_CHAT, BOB)
    held.release()
    other.release()
    assert admission.capacity.open == 0


async def test_a_draining_instance_refuses_with_a_503_to_come_back_at_once() -> None:
    admission, _, draining = gate()
    admission.refuse_if_draining()
    draining.set()
    with pytest.raises(UpstreamUnavailableError) as refused:
        admission.refuse_if_draining()
    assert error_response(refused.value).status_code == 503
    assert refused.value.retry_after_s == 1


async def test_a_pass_is_released_once_however_often_it_is_released() -> None:
    admission, metrics, _ = gate(streams=2, per_chat=2, per_client=2)
    one = await admission.admit_stream(CHAT, ALICE)
    two = await admission.admit_stream(CHAT, ALICE)
    one.opened()
    two.opened()
    assert sample(metrics, "bff_sse_streams") == 2
    for _ in range(3):
        one.release()
    assert one.released and not two.released
    assert sample(metrics, "bff_sse_streams") == 1
    assert admission.capacity.open == 1
    # `two` still holds its places: had `one` been released thrice, the chat and the client
    # would have room for two more now.
    await admission.admit_stream(CHAT, ALICE)
    with pytest.raises(OverloadedError):
        await admission.admit_stream(CHAT, ALICE)


async def test_a_pass_released_before_its_answer_opened_leaves_the_gauge_alone() -> None:
    admission, metrics, _ = gate()
    held = await admission.admit_stream(CHAT, ALICE)
    held.release()
    held.opened()  # too late: nothing to count
    assert sample(metrics, "bff_sse_streams") == 0
    assert admission.capacity.open == 0


# -- every way a stream's answer ends gives its places back --------------------------------


async def frames_then(end: BaseException | None) -> AsyncIterator[bytes]:
    yield b": hello\n\n"
    if end is not None:
        raise end


async def never_read(message: Any) -> None:
    if message["type"] == "http.response.body":
        await asyncio.Event().wait()  # a client that stopped reading


async def read(message: Any) -> None:
    pass


def receive_after(leave: asyncio.Event) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def receive() -> dict[str, Any]:
        await leave.wait()
        return {"type": "http.disconnect"}

    return receive


def opening(held: StreamPass, started: asyncio.Event) -> Callable[[], None]:
    def opened() -> None:
        held.opened()
        started.set()

    return opened


async def serve(
    held: StreamPass, frames: AsyncIterator[bytes], send: Any, started: asyncio.Event
) -> None:
    response = EventStreamResponse(
        frames, on_open=opening(held, started), on_close=held.release, send_timeout_s=0.05
    )
    scope = {"type": "http", "extensions": {}}
    await response(scope, receive_after(asyncio.Event()), send)


async def endless() -> AsyncIterator[bytes]:
    while True:
        yield b": ping\n\n"
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "how",
    ["done", "bus failed", "bug", "stalled", "cancelled"],
)
async def test_every_end_of_a_stream_releases_its_places(how: str) -> None:
    admission, metrics, _ = gate(streams=1, per_chat=1, per_client=1)
    held = await admission.admit_stream(CHAT, ALICE)
    started = asyncio.Event()
    if how == "cancelled":
        task = asyncio.create_task(serve(held, endless(), read, started))
        await started.wait()
        assert sample(metrics, "bff_sse_streams") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        end = {"done": None, "bus failed": BusUnavailableError(), "bug": RuntimeError("x")}
        frames = endless() if how == "stalled" else frames_then(end[how])
        await serve(held, frames, never_read if how == "stalled" else read, started)
        assert started.is_set()
    assert held.released
    assert sample(metrics, "bff_sse_streams") == 0
    assert admission.capacity.open == 0
    again = await admission.admit_stream(CHAT, ALICE)  # chat and client both have room
    again.release()


async def test_a_client_that_leaves_releases_its_places() -> None:
    admission, metrics, _ = gate(per_client=1)
    held = await admission.admit_stream(CHAT, ALICE)
    left = asyncio.Event()

    async def until_the_client_leaves() -> AsyncIterator[bytes]:
        # What `ChatStream` does when told the client left: its frames end.
        while not left.is_set():
            yield b": ping\n\n"
            await asyncio.sleep(0)

    started = asyncio.Event()
    response = EventStreamResponse(
        until_the_client_leaves(),
        on_open=opening(held, started),
        on_close=held.release,
        on_disconnect=left.set,
    )
    gone = asyncio.Event()
    task = asyncio.create_task(response({"type": "http"}, receive_after(gone), read))
    await started.wait()
    assert sample(metrics, "bff_sse_streams") == 1 and not held.released
    gone.set()
    await task
    assert left.is_set() and held.released
    assert sample(metrics, "bff_sse_streams") == 0


# -- long-polls ------------------------------------------------------------------------------


async def test_a_waiting_long_poll_holds_the_clients_place_until_it_is_answered() -> None:
    admission, metrics, _ = gate(per_client=1)
    async with admission.long_poll(ALICE):
        assert sample(metrics, "bff_long_polls") == 1
        with pytest.raises(RateLimitedError):
            await admission.admit_stream(CHAT, ALICE)
        with pytest.raises(RateLimitedError):
            async with admission.long_poll(ALICE):
                pass
        async with admission.long_poll(BOB):  # the limit is per client
            assert sample(metrics, "bff_long_polls") == 2
    assert sample(metrics, "bff_long_polls") == 0
    (await admission.admit_stream(CHAT, ALICE)).release()


async def test_a_long_poll_that_fails_or_is_cancelled_gives_its_place_back() -> None:
    admission, metrics, _ = gate(per_client=1)
    with pytest.raises(BusUnavailableError):
        async with admission.long_poll(ALICE):
            raise BusUnavailableError()
    waiting = asyncio.Event()

    async def wait() -> None:
        async with admission.long_poll(ALICE):
            waiting.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(wait())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sample(metrics, "bff_long_polls") == 0
    async with admission.long_poll(ALICE):
        pass
