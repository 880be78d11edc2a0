"""The poller's decisions, in-process and in seconds: the real registry, service, poller and
upstream client on a MemoryBus, against the emulator reached through httpx's ASGI transport
(no subprocess, no socket). Cadences are scaled down tenfold and more, and each assertion
compares counts an order of magnitude apart, so a loaded machine cannot flip them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from app.bus import MemoryBus
from app.cadence import Cadence
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.emulator.faults import Faults
from app.models import ChatRef
from app.poller import PollerTuning
from app.registry import Keepalive, PollerRegistry
from app.security import HandleCodec
from app.service import ChatService
from app.upstream import UpstreamClient

CC = "cc-poller-tests"
CADENCE = Cadence(
    interval_s=0.6,
    fast_s=0.05,
    idle_s=1.1,
    keepalive_s=1.2,
    lively_window_s=0.5,
    agent_typing_max_s=1.5,
    awaiting_max_s=20.0,
)
READER_WINDOW_S = 0.8


@dataclass
class Stack:
    emulator: Emulator
    bus: MemoryBus
    registry: PollerRegistry
    service: ChatService
    acquired: list[str]  # the key of every chat this registry took up, in order

    def polls(self, upstream_id: str, since: float) -> list[float]:
        """Arrival times of the GetMessages polls of one chat since `since` (monotonic)."""
        return [
            r.at
            for r in self.emulator.requests()
            if r.chat_id == upstream_id
            and r.method == "GET"
            and r.path.endswith("/messages")
            and r.at >= since
        ]

    async def count_polls(self, upstream_id: str, seconds: float) -> int:
        start = time.monotonic()
        await asyncio.sleep(seconds)
        return len(self.polls(upstream_id, start))

    async def open_chat(self) -> tuple[ChatRef, str]:
        ref = await self.service.create("Chris", "Where is my order?")
        upstream_id = ref.upstream_id
        await self.emulator.agent_join(upstream_id)
        return ref, upstream_id


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    emulator = Emulator(
        EmulatorConfig(contact_center_id=CC, scripted_agent=False, idle_disconnect_s=0)
    )
    upstream = UpstreamClient(
        "http://emulator.local",
        SecretStr(CC),
        transport=httpx.ASGITransport(app=create_emulator_app(emulator)),
    )
    bus = MemoryBus()
    codec = HandleCodec([b"poller-tests-key-0123456789abcdefghij"])
    acquired: list[str] = []
    held: set[str] = set()

    def on_change(_: int) -> None:
        acquired.extend(registry.held - held)
        held.clear()
        held.update(registry.held)

    registry = PollerRegistry(
        upstream=upstream,
        bus=bus,
        resolve=codec.resolve,
        tuning=PollerTuning(cadence=CADENCE, lease_ttl_s=3.0, state_refresh_s=30.0),
        keepalive=Keepalive(background_s=30.0, unread_s=30.0, per_client=10),
        reader_window_s=READER_WINDOW_S,
        on_change=on_change,
    )
    service = ChatService(
        upstream=upstream,
        bus=bus,
        codec=codec,
        registry=registry,
        cold_wait_s=3.0,
        draining=asyncio.Event(),
        reader_window_s=READER_WINDOW_S,
    )
    registry.start()
    try:
        yield Stack(emulator, bus, registry, service, acquired)
    finally:
        await registry.drain()
        await upstream.aclose()
        await bus.aclose()
        await emulator.aclose()


async def keep_reading(stack: Stack, ref: ChatRef) -> None:
    """A viewer present all along (as an open stream's periodic interest would be)."""
    while True:
        await stack.service.warm(ref)
        await asyncio.sleep(READER_WINDOW_S / 4)


@pytest.fixture
async def reading(stack: Stack) -> AsyncIterator[ChatRef]:
    ref, _ = await stack.open_chat()
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        yield ref
    finally:
        reader.cancel()


async def test_a_typing_agent_gets_fast_polls_until_the_reply(
    stack: Stack, reading: ChatRef
) -> None:
    upstream_id = reading.upstream_id
    await asyncio.sleep(1.0)
    base = await stack.count_polls(upstream_id, 1.2)  # the interval: about 2
    await stack.emulator.agent_typing(upstream_id, True)
    await asyncio.sleep(CADENCE.interval_s + 0.1)  # seen at the next poll at the latest
    typing = await stack.count_polls(upstream_id, 0.7)  # fast: about 14
    await stack.emulator.agent_say(upstream_id, "Here is your answer")
    await asyncio.sleep(CADENCE.fast_s * 4)
    after = await stack.count_polls(upstream_id, 1.2)
    assert base <= 3
    assert typing >= 6, f"only {typing} polls while the agent typed"
    assert after <= 3, f"{after} polls once the reply was in"


async def test_typing_that_never_ends_is_capped(stack: Stack, reading: ChatRef) -> None:
    await stack.emulator.agent_typing(reading.upstream_id, True)
    # The cap counts from the poll that saw the notice (within one interval).
    await asyncio.sleep(CADENCE.interval_s + CADENCE.agent_typing_max_s + 0.2)
    assert await stack.count_polls(reading.upstream_id, 1.2) <= 3


async def test_customer_typing_notices_change_nothing(stack: Stack, reading: ChatRef) -> None:
    upstream_id = reading.upstream_id
    await asyncio.sleep(1.0)

    async def type_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await stack.service.operate(reading, "SendStartTypingNotification")
            await asyncio.sleep(0.1)
            await stack.service.operate(reading, "SendStopTypingNotification")
            await asyncio.sleep(0.1)

    start = time.monotonic()
    await type_for(1.8)
    assert len(stack.polls(upstream_id, start)) <= 5, "typing notices made the poller poll"


async def test_a_send_gets_one_immediate_poll_not_a_fast_window(
    stack: Stack, reading: ChatRef
) -> None:
    upstream_id = reading.upstream_id
    await asyncio.sleep(1.0)
    sent = time.monotonic()
    await stack.service.operate(reading, "SendMessage", "Hello?")
    await asyncio.sleep(1.2)
    polls = stack.polls(upstream_id, sent)
    assert polls, "no poll after the send"
    assert polls[0] - sent < 0.3, "the echo poll came late"
    # Then the base interval (about 2 in 1.2 s), not a burst of fast polls.
    assert len(polls) <= 4, f"{len(polls)} polls within 1.2 s of a send"
    assert any(m.body.get("text") == "Hello?" for m in await stack.bus.messages(reading.key, 0))


async def test_without_readers_only_the_keepalive(stack: Stack) -> None:
    ref, upstream_id = await stack.open_chat()
    # RequestChat notes a reader (the page reads next); nobody comes, so it lapses.
    await asyncio.sleep(READER_WINDOW_S + CADENCE.interval_s + 0.2)
    await stack.emulator.agent_typing(upstream_id, True)  # even a typing agent
    quiet = await stack.count_polls(upstream_id, 2.5)
    assert 1 <= quiet <= 3, f"{quiet} polls in 2.5 s with nobody reading (keep-alive 1.2 s)"
    await stack.emulator.agent_typing(upstream_id, False)
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await asyncio.sleep(CADENCE.keepalive_s + 0.1)  # the next poll sees the reader
        await stack.emulator.agent_typing(upstream_id, True)
        await asyncio.sleep(CADENCE.interval_s + 0.1)
        assert await stack.count_polls(upstream_id, 0.7) >= 6
    finally:
        reader.cancel()


async def test_a_waiting_customer_keeps_the_interval(stack: Stack, reading: ChatRef) -> None:
    """While the customer waits for a reply the chat never goes quiet, even past the lively
    window, so the agent's typing notice is still caught in time."""
    upstream_id = reading.upstream_id
    await stack.service.operate(reading, "SendMessage", "Anyone there?")
    await asyncio.sleep(0.3)
    # Past the lively window a chat stretches towards 1.1 s; a waiting customer keeps 0.6 s.
    await asyncio.sleep(2 * CADENCE.lively_window_s)
    gaps = sorted(await gaps_over(stack, upstream_id, 3.0))
    assert gaps[len(gaps) // 2] < 0.85, f"gaps {gaps}"


async def test_a_quiet_chat_stretches_to_the_idle_cadence(stack: Stack, reading: ChatRef) -> None:
    """The counterpart of the test above: nobody waits, so the same chat slows down."""
    await asyncio.sleep(2 * CADENCE.lively_window_s + 0.5)
    gaps = sorted(await gaps_over(stack, reading.upstream_id, 3.0))
    assert gaps[len(gaps) // 2] > 0.95, f"gaps {gaps}"


async def gaps_over(stack: Stack, upstream_id: str, seconds: float) -> list[float]:
    start = time.monotonic()
    await asyncio.sleep(seconds)
    polls = stack.polls(upstream_id, start)
    return [b - a for a, b in itertools.pairwise(polls)]


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, 12), (400, 2), (500, 4)],
    ids=["busy", "invalid-state", "internal-error"],
)
async def test_a_refused_poll_tells_viewers_the_upstream_is_degraded(
    stack: Stack, reading: ChatRef, status: int, code: int
) -> None:
    """Whatever the refusal (busy, "invalid state" on a read, an internal error), no message
    comes through while it lasts: viewers are told, and told again when it is over."""
    await asyncio.sleep(CADENCE.interval_s)  # the first poll stored the chat OK
    assert (await stack.bus.record(reading.key)).status.value == "ok"
    stack.emulator.set_faults(
        Faults(error_status=status, error_body_kind="json", error_code=code, routes="read")
    )
    await status_becomes(stack, reading.key, "degraded", within_s=5)
    stack.emulator.clear_faults()
    await status_becomes(stack, reading.key, "ok", within_s=10)  # a backoff step or two


async def status_becomes(stack: Stack, key: str, status: str, *, within_s: float) -> None:
    for _ in range(int(within_s / 0.05)):
        if (await stack.bus.record(key)).status.value == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never became {status} within {within_s} s")


async def test_a_chat_that_is_over_is_not_taken_up_again(stack: Stack, reading: ChatRef) -> None:
    """Its viewers keep showing interest until they have read the end; the registry must not
    take the lease again (and read the ended record, and let it go) at every sweep."""
    await asyncio.sleep(CADENCE.interval_s)
    assert stack.acquired == [reading.key]
    await stack.service.operate(reading, "Complete")
    for _ in range(100):
        if reading.key not in stack.registry.held:
            break
        await asyncio.sleep(0.05)
    assert (await stack.bus.record(reading.key)).ended
    await asyncio.sleep(3.5)  # three acquisition attempts' worth, two or three sweeps
    taken = stack.acquired.count(reading.key)
    assert taken == 1, f"the ended chat was taken up {taken} times"
