"""The poll schedule as tables, in-process and without a clock: what each poll's messages do to
the chat's turn (and what they tell the fleet), and where the polls go for a bot, a canned
answer, a queue wait, a typing agent, the customer's turn, an empty budget, the floor and the
ceiling, cold and warm fleet histograms, no reader, and failures."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import pytest

from app.bus.fleet import BUCKETS, HistogramKind, Histograms, bucket_of, empty
from app.core.schedule import (
    CUSTOMER_TYPING_MAX_S,
    ENGAGED_S,
    TYPING_GAP_S,
    WATCH_GAP_S,
    Budget,
    Spend,
    capacity,
    fresh_spend,
    next_delay,
    spend,
)
from app.core.turn import Observation, Turn, next_turn
from app.models import TranscriptEntry

B = Budget()
COLD = empty()


def entry(kind: str, party: str | None) -> TranscriptEntry:
    body: dict[str, Any] = {"index": 1, "type": kind}
    if party is not None:
        body["from"] = {"nickname": "x", "participantId": "1", "type": party}
    return TranscriptEntry(1, body)


def warm(kind: HistogramKind, seconds: float, weight: float = 500.0) -> Histograms:
    """A fleet that has seen `kind` take about `seconds`, many times."""
    weights = [0.0] * BUCKETS
    weights[bucket_of(seconds)] = weight
    return {**empty(), kind: tuple(weights)}


# Polls at 10.0 after one at 8.0: news from another party arrived at 9.0 (the middle).
NOW, BEFORE = 10.0, 8.0


@pytest.mark.parametrize(
    ("before", "entries", "waiting", "after", "observed"),
    [
        (Turn(), [], False, Turn(), []),
        # The customer typing: the agent waits for them (and the customer is in the chat).
        (
            Turn(),
            [("TypingStarted", "Customer")],
            False,
            Turn(customer_typing_at=9, news_at=9, customer_at=9),
            [],
        ),
        (
            Turn(customer_typing_at=4),
            [("TypingStopped", "Customer")],
            False,
            Turn(news_at=9, customer_at=9),
            [],
        ),
        # Their message is taken when seen (the poll that echoes a send runs at once).
        (
            Turn(customer_typing_at=4),
            [("Text", "Customer")],
            False,
            Turn(sent_at=10, news_at=10, customer_at=10),
            [],
        ),
        (Turn(), [("TypingStarted", "Agent")], False, Turn(typing_at=9, news_at=9), []),
        (Turn(typing_at=4), [("TypingStarted", "Agent")], False, Turn(typing_at=4, news_at=9), []),
        (Turn(typing_at=4), [("TypingStopped", "Agent")], False, Turn(news_at=9), []),
        (Turn(typing_at=4, agent=True), [("ParticipantLeft", "Agent")], False, Turn(news_at=9), []),
        # An agent's reply: how long it took goes to the fleet, and the chat remembers it.
        (
            Turn(sent_at=5, typing_at=6, agent=True),
            [("Text", "Agent")],
            False,
            Turn(news_at=9, last_reply_s=4, agent=True),
            [Observation("reply", 4.0)],
        ),
        # A bot's (any other party's) is kept apart: it answers in seconds.
        (
            Turn(sent_at=8.5),
            [("Text", "External")],
            False,
            Turn(news_at=9, last_reply_s=0.5),
            [Observation("auto", 0.5)],
        ),
        # An agent's message nobody asked for is no reply time.
        (Turn(last_reply_s=3), [("Text", "Agent")], False, Turn(news_at=9), []),
        # Several entries in one poll, in order.
        (
            Turn(),
            [("Text", "Customer"), ("TypingStarted", "Agent"), ("Text", "Agent")],
            False,
            Turn(news_at=9, last_reply_s=0, customer_at=10),
            [Observation("reply", 0.0)],
        ),
        # The queue from the chat's start: a greeting from a bot is due as after a message.
        (Turn(), [], True, Turn(sent_at=10, waiting_at=10, news_at=10), []),
        # A wait that begins later (a bot handing over): only the join is awaited.
        (Turn(news_at=3), [], True, Turn(waiting_at=10, news_at=3), []),
        (Turn(waiting_at=2), [], True, Turn(waiting_at=2), []),
        (
            Turn(waiting_at=2, last_reply_s=1),
            [("ParticipantJoined", "Agent")],
            False,
            Turn(news_at=9, agent=True),
            [Observation("join", 7.0)],
        ),
        # The state says the wait is over without a join seen: no time to tell.
        (Turn(waiting_at=2), [], False, Turn(), []),
    ],
)
def test_next_turn(
    before: Turn,
    entries: list[tuple[str, str | None]],
    waiting: bool,
    after: Turn,
    observed: list[Observation],
) -> None:
    messages = [entry(kind, party) for kind, party in entries]
    assert next_turn(before, messages, now=NOW, previous_poll=BEFORE, waiting=waiting) == (
        after,
        observed,
    )


def polls(
    turn: Turn,
    *,
    until: float,
    fleet: Histograms = COLD,
    budget: Budget = B,
    state: Spend | None = None,
) -> list[float]:
    """Where the schedule puts its polls from 0 to `until` when nothing arrives."""
    now, times = 0.0, []
    state = state or fresh_spend(budget, 0.0)
    while now < until:
        state = spend(state, budget, now)
        now += next_delay(fleet, turn, state, budget, now)
        times.append(now)
    return times


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise([0.0, *times])]


# The customer has just sent a message: to an agent (with a cold fleet, and with this chat's
# replies taking 12 s), or to a bot.
SENT = Turn(sent_at=0.0, news_at=0.0, customer_at=0.0, agent=True)
AGENT_CHAT = Turn(sent_at=0.0, news_at=0.0, last_reply_s=12.0, customer_at=0.0, agent=True)
BOT_CHAT = Turn(sent_at=0.0, news_at=0.0, last_reply_s=1.0, customer_at=0.0)


def test_a_chat_talking_to_a_bot_is_polled_densely_right_after_the_send() -> None:
    times = polls(BOT_CHAT, until=30)
    window = [t for t in times if t <= 3.0]
    assert len(window) >= 3, times
    assert max(gaps(window)) <= 1.0
    # A bot answering 0.5-3 s later is seen at 1.0 s at the median, at worst.
    assert all(g <= WATCH_GAP_S + 1e-9 for g in gaps(times) if g)


def test_who_is_in_the_chat_decides_the_window() -> None:
    """No agent yet: a bot's or an acknowledgement's window. An agent: their slower mix, with
    nothing likely in the first seconds; an agent whose last reply came within 2 s (an
    agent desktop's auto-reply) is polled densely too."""
    bot, agent = polls(BOT_CHAT, until=3), polls(AGENT_CHAT, until=3)
    assert len(bot) >= len(agent) + 2, (bot, agent)
    quick_agent = polls(replace(AGENT_CHAT, last_reply_s=1.0), until=3)
    assert len(quick_agent) >= len(agent) + 2, (quick_agent, agent)


@pytest.mark.parametrize("turn", [SENT, AGENT_CHAT], ids=["cold", "agent"])
def test_while_a_reply_is_likely_no_gap_exceeds_the_await_cap(turn: Turn) -> None:
    """A canned answer comes with no typing notice: never seen later than by polling at 3 s."""
    times = polls(turn, until=40)
    assert max(gaps(times)) <= WATCH_GAP_S + 1e-9, times


def test_once_a_reply_is_unlikely_the_chat_goes_quiet() -> None:
    times = polls(SENT, until=200)
    assert max(gaps(times)) == pytest.approx(B.ceiling_s)


def test_warm_fleet_histograms_move_the_polls_where_the_fleet_saw_replies() -> None:
    bots = polls(SENT, until=3, fleet=warm("reply", 1.6))
    cold = polls(SENT, until=3)
    slow = polls(SENT, until=3, fleet=warm("reply", 20.0))
    assert len(bots) > len(cold) >= len(slow), (bots, cold, slow)
    assert gaps(slow)[0] == pytest.approx(WATCH_GAP_S)


def test_a_queue_wait_is_polled_evenly_within_the_await_cap() -> None:
    """The agent joins 10-300 s after RequestChat, about uniformly: a direct client polling
    every 3 s sees it 1.5 s late at the median, 3 s at worst; these gaps do no worse."""
    times = polls(Turn(waiting_at=0.0), until=300)
    spread = gaps(times)[4:]  # the first seconds, before any join is likely, may stretch
    assert max(spread) <= WATCH_GAP_S + 1e-9
    assert max(spread) - min(spread) < 0.3, spread
    # Within the budget: its reads a minute and the bucket's burst.
    assert len(times) <= B.reads_per_min * 5 + capacity(B)


def test_a_join_expected_soon_is_not_jumped_over() -> None:
    """With joins only after 10 s the first gaps stretch, but the poll lands in time."""
    joins = warm("join", 12.0)
    times = polls(Turn(waiting_at=0.0), until=20, fleet=joins)
    assert gaps(times)[0] > WATCH_GAP_S
    inside = [t for t in times if 9.0 <= t <= 16.0]
    assert inside[0] <= 9.0 + WATCH_GAP_S
    assert max(b - a for a, b in itertools.pairwise(inside)) <= WATCH_GAP_S


def test_a_typing_agent_gets_fast_polls_capped_in_time() -> None:
    typing = polls(Turn(typing_at=0.0, news_at=0.0), until=60)
    # An agent types for 4-15 s: that many fast polls fit in the bucket's burst.
    early = [g for t, g in zip(typing, gaps(typing), strict=True) if t <= 15]
    assert all(g == pytest.approx(TYPING_GAP_S) for g in early)
    assert gaps(typing)[-1] > 2 * TYPING_GAP_S, "typing that never ends is capped"


def test_the_customers_turn_is_watched_until_they_go_silent() -> None:
    """After a reply, the agent may follow up or end the chat at any moment: watched at
    `WATCH_GAP_S` while the customer is in the conversation, quiet once they are silent for
    `ENGAGED_S` (gaps growing from 3 s to the ceiling)."""
    replied = Turn(news_at=0.0, last_reply_s=12.0, customer_at=0.0, agent=True)
    times = polls(replied, until=ENGAGED_S + 60)
    engaged = [g for t, g in zip(times, gaps(times), strict=True) if t < ENGAGED_S]
    assert all(g == pytest.approx(WATCH_GAP_S) for g in engaged), engaged
    assert max(gaps(times)) == pytest.approx(B.ceiling_s)


def test_a_chat_whose_customer_is_away_stretches_toward_the_ceiling() -> None:
    """An agent posting to a customer who never wrote (or left long ago): the quiet cadence."""
    times = polls(Turn(news_at=0.0, last_reply_s=12.0, agent=True), until=120)
    spread = gaps(times)
    assert spread[0] == pytest.approx(3.0)
    assert spread == sorted(spread)
    assert spread[-1] == pytest.approx(B.ceiling_s)


def test_while_the_customer_types_in_their_turn_the_agent_waits() -> None:
    """Their typing notice: nothing is likely until they send (which wakes the poller), so
    the gaps stretch; for at most `CUSTOMER_TYPING_MAX_S` per notice."""
    typing = Turn(news_at=0.0, customer_at=0.0, customer_typing_at=0.0, agent=True)
    times = polls(typing, until=60)
    assert gaps(times)[0] == pytest.approx(B.ceiling_s)
    late = [g for t, g in zip(times, gaps(times), strict=True) if t > CUSTOMER_TYPING_MAX_S + 9]
    assert all(g == pytest.approx(WATCH_GAP_S) for g in late), times
    # Not while a reply to their last message is due, nor in the queue.
    for busy in (replace(typing, sent_at=0.0), replace(typing, waiting_at=0.0)):
        assert max(gaps(polls(busy, until=30))) <= WATCH_GAP_S + 1e-9


def test_an_empty_budget_stretches_until_a_token_is_back() -> None:
    full = capacity(B)
    rich = next_delay(COLD, BOT_CHAT, Spend(tokens=full, at=0.0), B, 0.0)
    empty_bucket = next_delay(COLD, BOT_CHAT, Spend(tokens=0, at=0.0), B, 0.0)
    half = next_delay(COLD, BOT_CHAT, Spend(tokens=full / 2, at=0.0), B, 0.0)
    assert rich < half < empty_bucket
    assert empty_bucket >= 60 / B.reads_per_min - 1e-9  # at least one token's refill


@pytest.mark.parametrize(
    ("budget", "turn", "expected"),
    [
        (Budget(floor_s=1.0), BOT_CHAT, 1.0),  # never below the floor
        (Budget(ceiling_s=2.0), Turn(), 2.0),  # never above the ceiling
        (Budget(reads_per_min=0.5), BOT_CHAT, 8.0),  # even out of budget
        (Budget(ceiling_s=9.0, keepalive_s=6.0), Turn(), 6.0),  # nor the keep-alive
    ],
)
def test_gaps_stay_within_floor_and_ceiling(budget: Budget, turn: Turn, expected: float) -> None:
    state = Spend(tokens=0.0, at=0.0) if budget.reads_per_min < 1 else fresh_spend(budget, 0)
    assert next_delay(COLD, turn, state, budget, 0.0) == pytest.approx(expected)


def test_a_bigger_budget_is_spent() -> None:
    small = polls(SENT, until=60, budget=Budget(reads_per_min=10))
    large = polls(SENT, until=60, budget=Budget(reads_per_min=40))
    assert len(large) > len(small)


def test_a_structureless_lively_chat_stays_within_the_budget() -> None:
    """An agent posting at random, no customer: nothing is awaited, so the chat is polled as
    the customer's turn, well within the budget (five viewers polling every 3 s make 200)."""
    rng = random.Random(7)
    now, turn, state, reads = 0.0, Turn(), fresh_spend(B, 0.0), 0
    posts = list(itertools.accumulate(rng.expovariate(1 / 8) for _ in range(200)))
    while now < 600:
        state, reads = spend(state, B, now), reads + 1
        nxt = now + next_delay(COLD, turn, state, B, now)
        if any(now < p <= nxt for p in posts):
            turn, _ = next_turn(
                turn, [entry("Text", "Agent")], now=nxt, previous_poll=now, waiting=False
            )
        now = nxt
    assert reads / 10 <= 20, f"{reads / 10} reads a minute"


@pytest.mark.parametrize(
    ("situation", "expected"),
    [
        # Nobody reads (an app in the background): the keep-alive only, whatever happens.
        ({"readers": False}, 10.0),
        ({"readers": False, "turn": Turn(typing_at=0.0)}, 10.0),
        # Backoff from the ceiling, doubling, the upper half random, at least the Retry-After.
        ({"failures": 1, "jitter": 0.0}, 4.0),
        ({"failures": 1, "jitter": 0.999}, 7.996),
        ({"failures": 2, "jitter": 0.0}, 8.0),
        ({"failures": 10, "jitter": 0.0}, 15.0),
        ({"failures": 50, "jitter": 0.5}, 22.5),  # no overflow
        ({"failures": 1, "retry_after_s": 12}, 12.0),
        # Failing, even a typing agent or an absent reader waits for the backoff.
        ({"failures": 3, "turn": Turn(typing_at=0.0)}, 15.0),
        ({"failures": 3, "readers": False}, 15.0),
    ],
)
def test_no_reader_and_failures(situation: dict[str, Any], expected: float) -> None:
    turn = situation.pop("turn", SENT)
    delay = next_delay(COLD, turn, fresh_spend(B, 0.0), B, 0.0, **situation)
    assert delay == pytest.approx(expected, abs=1e-3)
