"""The poller's decisions, in-process on a fake clock: the runtime `build_runtime` wires (real
registry, service, pollers and upstream client on a memory bus) against the emulator reached
through httpx's ASGI transport. The schedule's windows are its own seconds (a bot answers
within 3 s, an agent joins within minutes), passed on the fake clock in milliseconds; the
ceiling and keep-alive are shortened. Assertions are on where the polls went (the upstream's
view, in fake seconds) around the moment something was posted.

The memory bus keeps the real clock: a reader noted on it is present for `READER_WINDOW_S` of
real time, which the one test that needs a reader gone waits out for real.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator

import pytest

from app.core.poller import POKE_COALESCE_S
from app.core.schedule import WATCH_GAP_S
from app.emulator.faults import Faults
from app.models import ChatRef
from tests.unit.polling import Polling, polling

CEILING_S = 4.0
KEEPALIVE_S = 4.0
READER_WINDOW_S = 0.8
# Fake time is exact; this only covers float sums.
EPS = 1e-6


@pytest.fixture
async def stack() -> AsyncIterator[Polling]:
    async with polling(
        poll_ceiling_s=CEILING_S,
        poll_keepalive_s=KEEPALIVE_S,
        poll_backoff_max_s=1.0,
        lease_ttl_s=3.0,
        state_refresh_s=30.0,
        reader_window_s=READER_WINDOW_S,
        background_keepalive_s=30.0,
        unread_keepalive_s=30.0,
        keepalive_chats_per_client=10,
    ) as stack:
        yield stack


async def keep_reading(stack: Polling, ref: ChatRef) -> None:
    """A viewer present all along (as an open stream's periodic interest would be)."""
    while True:
        await stack.runtime.service.warm(ref)
        await stack.clock.sleep(READER_WINDOW_S / 4)


@pytest.fixture
async def reading(stack: Polling) -> AsyncIterator[ChatRef]:
    ref = await stack.open_chat()
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        yield ref
    finally:
        reader.cancel()


async def answer_after(stack: Polling, ref: ChatRef, seconds: float, text: str) -> float:
    """The customer sends; another party answers `seconds` later (no typing notice). Returns
    when the answer was posted, once the bus has it."""
    await stack.runtime.service.operate(ref, "SendMessage", "A question")
    await stack.clock.advance(seconds)
    posted = stack.clock.monotonic()
    await stack.emulator.agent_say(ref.upstream_id, text)
    for _ in range(200):
        if any(m.body.get("text") == text for m in await stack.bus.messages(ref.key, 0)):
            return posted
        await stack.clock.advance(0.05)
    raise AssertionError(f"{text!r} never reached the bus")


async def test_a_bots_answer_is_seen_within_its_dense_window(
    stack: Polling, reading: ChatRef
) -> None:
    """A chat whose replies came within 2 s talks to a bot: after the next send, polls come
    about a second apart, so a bot answer 2.2 s later waits about half a second."""
    upstream_id = reading.upstream_id
    await stack.clock.advance(0.5)
    await answer_after(stack, reading, 1.0, "Bot: hello")  # the chat's history: a bot
    await stack.clock.advance(0.5)
    sent = stack.clock.monotonic()
    posted = await answer_after(stack, reading, 2.2, "Bot: your order ships today")
    before, after = stack.gap_around(upstream_id, posted)
    assert after - before <= 1.1 + EPS, f"polls at {before - sent:.2f}, {after - sent:.2f}"
    # The echo's poll, then more before the answer (an agent's chat with no quick replies
    # gets the echo's only: nothing is likely in its first seconds after a send).
    window = [t - sent for t in stack.polls_since(upstream_id, sent) if t <= posted]
    assert len(window) >= 2, f"polls before the bot answered: {window}"
    # The fleet heard about both replies.
    replies = (await stack.bus.snapshot())["reply"]
    assert sum(replies) == pytest.approx(2.0, rel=0.01)


async def test_a_canned_answer_is_never_seen_later_than_by_polling_every_3_s(
    stack: Polling, reading: ChatRef
) -> None:
    """An agent's one-click answer comes with no typing notice, seconds after the customer's
    message: the gaps stay under the await cap until it comes."""
    upstream_id = reading.upstream_id
    await stack.clock.advance(0.5)
    sent = stack.clock.monotonic()
    posted = await answer_after(stack, reading, 7.0, "We have sent it")
    times = [sent, *stack.polls_since(upstream_id, sent)]
    waited = [b - a for a, b in itertools.pairwise(times) if a <= posted]
    assert max(waited) <= WATCH_GAP_S + EPS, f"gaps {waited}"
    _, after = stack.gap_around(upstream_id, posted)
    assert after - posted <= WATCH_GAP_S + EPS


async def test_a_queue_wait_is_polled_within_the_cap_and_the_join_seen_in_time(
    stack: Polling,
) -> None:
    """Waiting for an agent, the customer is most likely to give up: from when the fleet has
    seen agents join (here: about 6 s after RequestChat), polls at most 2.8 s apart, and the
    join is seen within one gap."""
    for _ in range(50):
        await stack.bus.observe("join", 6.0)
    ref = await stack.open_chat(join=False)
    created = stack.clock.monotonic()
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await stack.clock.advance(8.0)
        joined = stack.clock.monotonic()
        await stack.emulator.agent_join(ref.upstream_id)
        for _ in range(100):
            state = (await stack.bus.record(ref.key)).state
            if state is not None and state.state == "Chatting":
                break
            await stack.clock.advance(0.05)
        else:
            raise AssertionError("the join was never seen")
    finally:
        reader.cancel()
    times = stack.polls_since(ref.upstream_id, created + 5.0)
    waited = [b - a for a, b in itertools.pairwise(times) if a <= joined]
    assert waited, f"no polls while joins were likely: {times}"
    assert max(waited) <= WATCH_GAP_S + EPS, f"gaps {waited}"
    _, after = stack.gap_around(ref.upstream_id, joined)
    assert after - joined <= WATCH_GAP_S + EPS


async def test_a_typing_agent_gets_fast_polls_until_the_reply(
    stack: Polling, reading: ChatRef
) -> None:
    upstream_id = reading.upstream_id
    await stack.clock.advance(4.0)  # the customer's turn: gaps from 3 s toward the ceiling
    quiet = await stack.count_polls(upstream_id, 6.0)
    await stack.emulator.agent_typing(upstream_id, True)
    await stack.clock.advance(CEILING_S + 0.1)  # seen at the next poll at the latest
    typing = await stack.count_polls(upstream_id, 6.0)  # about five
    assert quiet <= 2, f"{quiet} polls in 6 s of the customer's turn"
    assert typing >= 4, f"only {typing} polls in 6 s while the agent typed"


async def test_typing_that_never_ends_is_capped(
    stack: Polling, reading: ChatRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.core.schedule.TYPING_MAX_S", 2.0)
    await stack.clock.advance(0.5)
    await stack.emulator.agent_typing(reading.upstream_id, True)
    # The cap counts from the poll that saw the notice (within one ceiling).
    await stack.clock.advance(CEILING_S + 2.0 + 4.0)
    assert await stack.count_polls(reading.upstream_id, 6.0) <= 3


async def test_customer_typing_notices_change_nothing(stack: Polling, reading: ChatRef) -> None:
    upstream_id = reading.upstream_id
    await stack.clock.advance(4.0)
    start = stack.clock.monotonic()
    while stack.clock.monotonic() < start + 5.0:
        await stack.runtime.service.operate(reading, "SendStartTypingNotification")
        await stack.clock.advance(0.1)
        await stack.runtime.service.operate(reading, "SendStopTypingNotification")
        await stack.clock.advance(0.1)
    assert len(stack.polls_since(upstream_id, start)) <= 2, "typing notices made it poll"


async def test_a_send_gets_one_immediate_poll(stack: Polling, reading: ChatRef) -> None:
    upstream_id = reading.upstream_id
    await stack.clock.advance(1.0)
    sent = stack.clock.monotonic()
    await stack.runtime.service.operate(reading, "SendMessage", "Hello?")
    await stack.clock.advance(0.5)
    polls = stack.polls_since(upstream_id, sent)
    assert polls, "no poll after the send"
    assert polls[0] - sent <= POKE_COALESCE_S + EPS, "the echo poll came late"
    assert any(m.body.get("text") == "Hello?" for m in await stack.bus.messages(reading.key, 0))


async def test_without_readers_only_the_keepalive(stack: Polling) -> None:
    ref = await stack.open_chat()
    # RequestChat notes a reader (the page reads next); nobody comes, so it lapses: on the
    # memory bus's clock, the real one.
    await asyncio.sleep(READER_WINDOW_S + 0.1)
    await stack.clock.advance(CEILING_S + 0.2)
    await stack.emulator.agent_typing(ref.upstream_id, True)  # even a typing agent
    quiet = await stack.count_polls(ref.upstream_id, 8.5)
    assert 1 <= quiet <= 3, f"{quiet} polls in 8.5 s with nobody reading (keep-alive 4 s)"
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await stack.clock.advance(KEEPALIVE_S + 0.1)  # the next poll sees the reader
        assert await stack.count_polls(ref.upstream_id, 6.0) >= 4
    finally:
        reader.cancel()


async def test_a_reader_arriving_at_an_unwatched_chat_gets_a_poll_at_once(stack: Polling) -> None:
    """Nobody watched: the chat's next poll is a keep-alive gap away. A tab opening it then
    (a bot may have greeted the customer meanwhile) gets a poll at once, not after that gap."""
    ref = await stack.open_chat()
    await asyncio.sleep(READER_WINDOW_S + 0.1)  # RequestChat's reader lapses (real clock)
    await stack.clock.advance(CEILING_S + 0.2)  # the chat is on the keep-alive now
    arrived = stack.clock.monotonic()
    reader = asyncio.create_task(keep_reading(stack, ref))
    try:
        await stack.clock.advance(0.5)
    finally:
        reader.cancel()
    polls = stack.polls_since(ref.upstream_id, arrived)
    assert polls, "no poll in the half second after the reader came"
    assert polls[0] - arrived <= POKE_COALESCE_S + EPS, f"first poll {polls[0] - arrived:.2f} s"


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, 12), (400, 2), (500, 4)],
    ids=["busy", "invalid-state", "internal-error"],
)
async def test_a_refused_poll_tells_viewers_the_upstream_is_degraded(
    stack: Polling, reading: ChatRef, status: int, code: int
) -> None:
    """Whatever the refusal (busy, "invalid state" on a read, an internal error), no message
    comes through while it lasts: viewers are told, and told again when it is over."""
    await stack.clock.advance(1.0)  # the first poll stored the chat OK
    assert (await stack.bus.record(reading.key)).status.value == "ok"
    stack.emulator.set_faults(
        Faults(error_status=status, error_body_kind="json", error_code=code, routes="read")
    )
    await status_becomes(stack, reading.key, "degraded", within_s=5)
    stack.emulator.clear_faults()
    await status_becomes(stack, reading.key, "ok", within_s=10)  # a backoff step or two


async def status_becomes(stack: Polling, key: str, status: str, *, within_s: float) -> None:
    for _ in range(int(within_s / 0.05)):
        if (await stack.bus.record(key)).status.value == status:
            return
        await stack.clock.advance(0.05)
    raise AssertionError(f"status never became {status} within {within_s} s")


async def test_a_chat_that_is_over_is_not_taken_up_again(
    stack: Polling, reading: ChatRef, caplog: pytest.LogCaptureFixture
) -> None:
    """Its viewers keep showing interest until they have read the end; the registry must not
    take the lease again (and read the ended record, and let it go) at every sweep."""
    await stack.clock.advance(1.0)
    assert reading.key in stack.runtime.registry.held
    await stack.runtime.service.operate(reading, "Complete")
    for _ in range(100):
        if reading.key not in stack.runtime.registry.held:
            break
        await stack.clock.advance(0.05)
    assert (await stack.bus.record(reading.key)).ended
    # Every lease the registry takes is logged (`polling <key> (epoch n)`).
    caplog.set_level(logging.INFO, logger="chat_bff.registry")
    await stack.clock.advance(3.5)  # three acquisition attempts' worth, two or three sweeps
    taken = [r for r in caplog.records if r.getMessage().startswith(f"polling {reading.key} ")]
    assert not taken, f"the ended chat was taken up again {len(taken)} times"
