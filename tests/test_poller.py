"""The poller's decisions, in-process and in seconds: the real registry, service, poller and
upstream client on a MemoryBus, against the emulator reached through httpx's ASGI transport
(no subprocess, no socket). The schedule's windows are real seconds (a bot answers within 3 s,
an agent joins within minutes); the ceiling and keep-alive are shortened. Assertions are on
where the polls went (the emulator's request log) around the moment something was posted,
with room for a loaded machine, not on how fast anything ran.
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
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.emulator.faults import Faults
from app.models import ChatRef
from app.poller import PollerTuning
from app.registry import Keepalive, PollerRegistry
from app.schedule import WATCH_GAP_S, Budget
from app.security import HandleCodec
from app.service import ChatService
from app.upstream import UpstreamClient

CC = "cc-poller-tests"
BUDGET = Budget(ceiling_s=4.0, keepalive_s=4.0, backoff_max_s=1.0)
# A loaded machine's event loop may run a timer this late.
SLACK_S = 0.4
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

    async def open_chat(self, *, join: bool = True) -> tuple[ChatRef, str]:
        ref = await self.service.create("Chris", "Where is my order?")
        upstream_id = ref.upstream_id
        if join:
            await self.emulator.agent_join(upstream_id)
        return ref, upstream_id

    def gap_around(self, upstream_id: str, at: float) -> tuple[float, float]:
        """(the last poll before `at`, the first after): where something posted at `at`
        waited to be seen."""
        times = self.polls(upstream_id, 0.0)
        before = max(t for t in times if t <= at)
        after = min(t for t in times if t > at)
        return before, after


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
        tuning=PollerTuning(budget=BUDGET, lease_ttl_s=3.0, state_refresh_s=30.0),
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


async def answer_after(stack: Stack, ref: ChatRef, seconds: float, text: str) -> float:
    """The customer sends; another party answers `seconds` later (no typing notice). Returns
    when the answer was posted, once the bus has it."""
    await stack.service.operate(ref, "SendMessage", "A question")
    await asyncio.sleep(seconds)
    posted = time.monotonic()
    await stack.emulator.agent_say(ref.upstream_id, text)
    for _ in range(200):
        if any(m.body.get("text") == text for m in await stack.bus.messages(ref.key, 0)):
            return posted
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never reached the bus")


async def test_a_bots_answer_is_seen_within_its_dense_window(
    stack: Stack, reading: ChatRef
) -> None:
    """A chat whose replies came within 2 s talks to a bot: after the next send, polls come
    about a second apart or less, so a bot answer 2.2 s later waits well under a second."""
    upstream_id = reading.upstream_id
    await asyncio.sleep(0.5)
    await answer_after(stack, reading, 1.0, "Bot: hello")  # the chat's history: a bot
    await asyncio.sleep(0.5)
    sent = time.monotonic()
    posted = await answer_after(stack, reading, 2.2, "Bot: your order ships today")
    before, after = stack.gap_around(upstream_id, posted)
    assert after - before <= 0.8 + SLACK_S, f"polls at {before - sent:.2f}, {after - sent:.2f}"
    # The echo's poll, then more before the answer (an agent's chat with no quick replies
    # gets the echo's only: nothing is likely in its first seconds after a send).
    window = [t - sent for t in stack.polls(upstream_id, sent) if t <= posted]
    assert len(window) >= 2, f"polls before the bot answered: {window}"
    # The fleet heard about both replies.
    replies = (await stack.bus.snapshot())["reply"]
    assert sum(replies) == pytest.approx(2.0, rel=0.01)


async def test_a_canned_answer_is_never_seen_later_than_by_polling_every_3_s(
    stack: Stack, reading: ChatRef
) -> None:
    """An agent's one-click answer comes with no typing notice, seconds after the customer's
    message: the gaps stay under the await cap until it comes."""
    upstream_id = reading.upstream_id
    await asyncio.sleep(0.5)
    sent = time.monotonic()
    posted = await answer_after(stack, reading, 7.0, "We have sent it")
    times = [sent, *stack.polls(upstream_id, sent)]
    waited = [b - a for a, b in itertools.pairwise(times) if a <= posted]
    assert max(waited) <= WATCH_GAP_S + SLACK_S, f"gaps {waited}"
    _, after = stack.gap_around(upstream_id, posted)
    assert after - posted <= WATCH_GAP_S + SLACK_S


async def test_a_queue_wait_is_polled_within_the_cap_and_the_join_seen_in_time(
    stack: Stack,
) -> None:
    """Waiting for an agent, the customer is most likely to give up: from when the fleet has
    seen agents join (here: about 6 s after RequestChat), polls at most 2.8 s apart, and the
    join is seen within one gap."""
    for _ in range(50):
        await stack.bus.observe("join", 6.0)
    ref, upstream_id = await stack.open_chat(join=False)
    created = time.monotonic()
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await asyncio.sleep(8.0)
        joined = time.monotonic()
        await stack.emulator.agent_join(upstream_id)
        for _ in range(100):
            state = (await stack.bus.record(ref.key)).state
            if state is not None and state.state == "Chatting":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the join was never seen")
    finally:
        reader.cancel()
    times = stack.polls(upstream_id, created + 5.0)
    waited = [b - a for a, b in itertools.pairwise(times) if a <= joined]
    assert waited, f"no polls while joins were likely: {times}"
    assert max(waited) <= WATCH_GAP_S + SLACK_S, f"gaps {waited}"
    _, after = stack.gap_around(upstream_id, joined)
    assert after - joined <= WATCH_GAP_S + SLACK_S


async def test_a_typing_agent_gets_fast_polls_until_the_reply(
    stack: Stack, reading: ChatRef
) -> None:
    upstream_id = reading.upstream_id
    await asyncio.sleep(4.0)  # the customer's turn: gaps from 3 s toward the ceiling
    quiet = await stack.count_polls(upstream_id, 6.0)
    await stack.emulator.agent_typing(upstream_id, True)
    await asyncio.sleep(BUDGET.ceiling_s + 0.1)  # seen at the next poll at the latest
    typing = await stack.count_polls(upstream_id, 6.0)  # about five
    assert quiet <= 2, f"{quiet} polls in 6 s of the customer's turn"
    assert typing >= 4, f"only {typing} polls in 6 s while the agent typed"


async def test_typing_that_never_ends_is_capped(
    stack: Stack, reading: ChatRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.schedule.TYPING_MAX_S", 2.0)
    await asyncio.sleep(0.5)
    await stack.emulator.agent_typing(reading.upstream_id, True)
    # The cap counts from the poll that saw the notice (within one ceiling).
    await asyncio.sleep(BUDGET.ceiling_s + 2.0 + 4.0)
    assert await stack.count_polls(reading.upstream_id, 6.0) <= 3


async def test_customer_typing_notices_change_nothing(stack: Stack, reading: ChatRef) -> None:
    upstream_id = reading.upstream_id
    await asyncio.sleep(4.0)

    async def type_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await stack.service.operate(reading, "SendStartTypingNotification")
            await asyncio.sleep(0.1)
            await stack.service.operate(reading, "SendStopTypingNotification")
            await asyncio.sleep(0.1)

    start = time.monotonic()
    await type_for(5.0)
    assert len(stack.polls(upstream_id, start)) <= 2, "typing notices made the poller poll"


async def test_a_send_gets_one_immediate_poll(stack: Stack, reading: ChatRef) -> None:
    upstream_id = reading.upstream_id
    await asyncio.sleep(1.0)
    sent = time.monotonic()
    await stack.service.operate(reading, "SendMessage", "Hello?")
    await asyncio.sleep(0.5)
    polls = stack.polls(upstream_id, sent)
    assert polls, "no poll after the send"
    assert polls[0] - sent < 0.3, "the echo poll came late"
    assert any(m.body.get("text") == "Hello?" for m in await stack.bus.messages(reading.key, 0))


async def test_without_readers_only_the_keepalive(stack: Stack) -> None:
    ref, upstream_id = await stack.open_chat()
    # RequestChat notes a reader (the page reads next); nobody comes, so it lapses.
    await asyncio.sleep(READER_WINDOW_S + BUDGET.ceiling_s + 0.2)
    await stack.emulator.agent_typing(upstream_id, True)  # even a typing agent
    quiet = await stack.count_polls(upstream_id, 8.5)
    assert 1 <= quiet <= 3, f"{quiet} polls in 8.5 s with nobody reading (keep-alive 4 s)"
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await asyncio.sleep(BUDGET.keepalive_s + 0.1)  # the next poll sees the reader
        assert await stack.count_polls(upstream_id, 6.0) >= 4
    finally:
        reader.cancel()


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
    await asyncio.sleep(1.0)  # the first poll stored the chat OK
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
    await asyncio.sleep(1.0)
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


async def test_a_reader_arriving_at_an_unwatched_chat_gets_a_poll_at_once(stack: Stack) -> None:
    """Nobody watched: the chat's next poll is a keep-alive gap away. A tab opening it then
    (a bot may have greeted the customer meanwhile) gets a poll at once, not after that gap."""
    ref, upstream_id = await stack.open_chat()
    await asyncio.sleep(1.0)  # the first poll is done; the next one is the keep-alive's
    arrived = time.monotonic()
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await asyncio.sleep(1.0)
    finally:
        reader.cancel()
    polls = stack.polls(upstream_id, arrived)
    assert polls, "no poll in the second after the reader came"
    assert polls[0] - arrived <= SLACK_S, f"first poll {polls[0] - arrived:.2f} s after"
