"""When to poll next: a pure function of what is likely to arrive and of the read budget.

A poll is worth its read where something is likely to arrive before the next one. A reply to
the customer's message (a bot or an auto-acknowledgement within seconds, a canned answer, a
typed one) and an agent joining a queued chat come with no warning, at times the fleet has
measured (`app/bus/fleet.py`: histograms of "customer message -> next reply" and "RequestChat
-> agent joined"). From such a histogram, the chance per second that the event arrives now,
given it has not yet (its hazard h), sets the gap: sqrt(2 * price / h), the gap that balances
the delay a poll saves against what it costs (a dense window right after a send where bots
answer, wider gaps later). While an event is still likely the gap never exceeds
`AWAIT_GAP_MAX_S`, so a reply is never seen later than by a client polling every 3 s. A
typing agent gets fast polls (capped in time); a chat whose turn is the customer's stretches
toward the ceiling; a queued chat keeps its gaps however long it waits. A chat whose last
reply came within `BOT_REPLY_S` is talking to a bot: its own history outweighs the fleet's.

The budget: reads per chat-minute while someone watches, as a token bucket holding one
minute's worth. The fuller the bucket, the cheaper a read (`price`); an empty bucket stretches
the gap until a token is back. Gaps stay within [floor, ceiling]. With no reader anywhere, the
keep-alive cadence only; after failures, backoff with jitter, at least the Retry-After.

Nothing here keeps state or reads a clock: `Turn` (this chat's recent events) is updated by
`next_turn` from each poll's new messages, `Spend` (the bucket) by `spend`; the poller owns the
timing and the I/O.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate

from app.bus.fleet import BUCKETS, HISTOGRAM_EDGES_S, HistogramKind, Histograms, empty
from app.models import Message
from app.supervision import Backoff, restart_delay

# An agent's typing notice: a reply is seconds away, for at most this long per notice.
TYPING_GAP_S = 1.2
TYPING_MAX_S = 30.0
# The widest gap while a reply or a join is still likely (a client polling every 3 s sees an
# event 1.5 s late at the median, 3 s at worst; this stays under both).
AWAIT_GAP_MAX_S = 2.8
# "Still likely": more than this share of the events not yet arrived.
LIKELY_MIN = 0.03
# A chat goes quiet from this gap, reaching its quiet cadence this long after its last news.
QUIET_FROM_S = 3.0
QUIET_RAMP_S = 20.0
# The price of a read, in seconds of delay it must save, with a full bucket at the default
# budget: sets a bot's window to about 0.6 s gaps.
PRICE_S = 0.06
DEFAULT_READS_PER_MIN = 20.0
# Replies this fast are a bot's; how much a bot-like chat trusts its own history.
BOT_REPLY_S = 2.0
BOT_WEIGHT = 0.8
# What the fleet's histograms are blended with: this many observations' worth of priors.
PRIOR_WEIGHT = 10.0
# Hazard uses at least this survival: a long-waiting chat gets no runaway dense polls.
SURVIVAL_FLOOR = 0.5
_SCAN_STEP_S = 0.1
# The last bucket holds everything beyond the last edge: spread over up to this.
_LAST_EDGE_S = 2 * HISTOGRAM_EDGES_S[-1]


@dataclass(frozen=True, slots=True)
class Budget:
    """The knob: `reads_per_min` while someone watches, gaps within [floor_s, ceiling_s];
    `keepalive_s` with nobody watching; backoff up to `backoff_max_s` after failures."""

    reads_per_min: float = DEFAULT_READS_PER_MIN
    floor_s: float = 0.5
    ceiling_s: float = 8.0
    keepalive_s: float = 10.0
    backoff_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Turn:
    """This chat's recent events, as times on the poller's clock (None: not now).

    `sent_at`: the customer's latest message, unanswered. `typing_at`: another party started
    typing. `waiting_at`: the chat started waiting for an agent. `news_at`: the last message
    of any kind. `last_reply_s`: how long the chat's last reply took."""

    sent_at: float | None = None
    typing_at: float | None = None
    waiting_at: float | None = None
    news_at: float | None = None
    last_reply_s: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    kind: HistogramKind
    seconds: float


@dataclass(frozen=True, slots=True)
class Spend:
    """The read budget's token bucket: `tokens` at time `at` (capacity: one minute's reads)."""

    tokens: float
    at: float


def _sender(message: Message) -> str | None:
    sender = message.body.get("from")
    kind = sender.get("type") if isinstance(sender, dict) else None
    return kind if isinstance(kind, str) else None


def next_turn(
    turn: Turn,
    messages: Iterable[Message],
    *,
    now: float,
    previous_poll: float | None,
    waiting: bool,
) -> tuple[Turn, list[Observation]]:
    """The turn after a poll at `now` found `messages` (new, in index order), the chat's state
    saying `waiting` for an agent; and what it observed for the fleet. A message arrived
    between `previous_poll` and `now` (the middle is taken); the customer's own message is
    taken at `now` (the poll that echoes a send runs at once)."""
    arrived = now if previous_poll is None else (previous_poll + now) / 2
    seen: list[Observation] = []
    for message in messages:
        kind = message.body.get("type")
        if _sender(message) == "Customer":
            # Their typing notices say nothing of what comes next: they have nothing to see.
            if kind == "Text":
                turn = replace(turn, sent_at=now, news_at=now)
            continue
        turn = replace(turn, news_at=arrived)
        if kind == "TypingStarted":
            turn = replace(turn, typing_at=turn.typing_at or arrived)
        elif kind in ("TypingStopped", "ParticipantLeft"):
            turn = replace(turn, typing_at=None)
        elif kind == "Text":
            took = None if turn.sent_at is None else max(0.0, arrived - turn.sent_at)
            if took is not None:
                seen.append(Observation("reply", took))
            turn = replace(turn, sent_at=None, typing_at=None, last_reply_s=took)
        elif kind == "ParticipantJoined" and turn.waiting_at is not None:
            seen.append(Observation("join", max(0.0, arrived - turn.waiting_at)))
            turn = replace(turn, waiting_at=None)
    if waiting and turn.waiting_at is None and not any(o.kind == "join" for o in seen):
        turn = replace(turn, waiting_at=now)
    elif not waiting:
        turn = replace(turn, waiting_at=None)
    return turn, seen


def quiet_after_s(budget: Budget) -> float:
    """How long after its last news a chat counts as quiet: when its gaps have stretched
    (`QUIET_RAMP_S`), or after a few of its longest gaps if the ceiling is short."""
    return min(QUIET_RAMP_S, 2.5 * budget.ceiling_s)


def fresh_spend(budget: Budget, now: float) -> Spend:
    return Spend(budget.reads_per_min, now)


def _tokens(spend: Spend, budget: Budget, now: float) -> float:
    rate = budget.reads_per_min / 60
    return min(budget.reads_per_min, spend.tokens + max(0.0, now - spend.at) * rate)


def spend(state: Spend, budget: Budget, now: float, reads: int = 1) -> Spend:
    """The bucket after `reads` upstream reads at `now` (it may go below zero)."""
    return Spend(_tokens(state, budget, now) - reads, now)


# -- likelihoods ------------------------------------------------------------------------------


def _uniform(low: float, high: float) -> tuple[float, ...]:
    """Bucket weights (summing to 1) of a time uniform over [low, high]."""
    lows = (0.0, *HISTOGRAM_EDGES_S)
    highs = (*HISTOGRAM_EDGES_S, _LAST_EDGE_S)
    return tuple(
        max(0.0, min(high, b) - max(low, a)) / (high - low)
        for a, b in zip(lows, highs, strict=True)
    )


def _mix(*parts: tuple[float, tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(sum(share * weights[i] for share, weights in parts) for i in range(BUCKETS))


# With no fleet data yet (research: public product documentation, reply-kinds.md): bots and
# acknowledgements 0.5-3 s, canned answers a few seconds to tens, typed replies 8-40 s; an
# agent joins 10-300 s after RequestChat.
BOT_PRIOR = _uniform(0.3, 3.0)
PRIORS: dict[HistogramKind, tuple[float, ...]] = {
    "reply": _mix((0.3, BOT_PRIOR), (0.3, _uniform(2.0, 30.0)), (0.4, _uniform(8.0, 40.0))),
    "join": _uniform(10.0, 300.0),
}


def _normalised(weights: Sequence[float]) -> tuple[float, ...]:
    total = sum(weights)
    return tuple(w / total for w in weights) if total > 0 else (0.0,) * len(weights)


def likelihood(fleet: Histograms, kind: HistogramKind, turn: Turn) -> tuple[float, ...]:
    """The distribution (bucket shares) of the time to the next `kind` event in this chat:
    the fleet's histogram blended with the prior, and for a chat whose last reply came
    within `BOT_REPLY_S`, mostly a bot's."""
    bot = kind == "reply" and turn.last_reply_s is not None and turn.last_reply_s <= BOT_REPLY_S
    return _likelihood(kind, tuple(fleet.get(kind, empty()[kind])), bot)


# Every poll of every chat asks, with one fleet snapshot for all of them (it changes every
# 10 s at most): computed once per snapshot, not once per poll.
@functools.lru_cache(maxsize=64)
def _likelihood(kind: HistogramKind, seen: tuple[float, ...], bot: bool) -> tuple[float, ...]:
    blended = _normalised([f + PRIOR_WEIGHT * p for f, p in zip(seen, PRIORS[kind], strict=True)])
    return _mix((BOT_WEIGHT, BOT_PRIOR), (1 - BOT_WEIGHT, blended)) if bot else blended


_LOWS = (0.0, *HISTOGRAM_EDGES_S)
_HIGHS = (*HISTOGRAM_EDGES_S, _LAST_EDGE_S)


# Per bucket: its density (share per second), and the share of the buckets before it.
Curve = tuple[tuple[float, ...], tuple[float, ...]]


@functools.lru_cache(maxsize=64)
def _curve(shares: tuple[float, ...]) -> Curve:
    """Per bucket: its density (share per second) and the share of the buckets before it."""
    density = tuple(s / (h - lo) for s, lo, h in zip(shares, _LOWS, _HIGHS, strict=True))
    return density, tuple(accumulate(shares, initial=0.0))[:-1]


def hazard(shares: Sequence[float], elapsed_s: float) -> tuple[float, float]:
    """(the chance per second that the event arrives at `elapsed_s`, given it has not; the
    share of events still to come), with times uniform within each bucket."""
    return _hazard(_curve(tuple(shares)), elapsed_s)


def _hazard(
    curve: tuple[tuple[float, ...], tuple[float, ...]], elapsed_s: float
) -> tuple[float, float]:
    if elapsed_s >= _LAST_EDGE_S:
        return 0.0, 0.0
    density, before = curve
    bucket = bisect.bisect_right(HISTOGRAM_EDGES_S, elapsed_s)
    survival = 1.0 - before[bucket] - density[bucket] * max(0.0, elapsed_s - _LOWS[bucket])
    return density[bucket] / max(survival, SURVIVAL_FLOOR), max(0.0, survival)


# -- the delay --------------------------------------------------------------------------------


def price(state: Spend, budget: Budget, now: float) -> float:
    """Seconds of delay a read must save: dearer with a smaller budget or an emptier bucket."""
    fill = max(_tokens(state, budget, now), 0.0) / budget.reads_per_min
    return PRICE_S * DEFAULT_READS_PER_MIN / budget.reads_per_min / max(fill, 0.1)


def _quiet_gap(turn: Turn, budget: Budget, at: float) -> float:
    # A bigger budget is spent on quiet chats too; a smaller one never below the ceiling.
    slowest = min(budget.ceiling_s, budget.ceiling_s * DEFAULT_READS_PER_MIN / budget.reads_per_min)
    if turn.news_at is None:
        return slowest
    ramp = min(1.0, max(0.0, at - turn.news_at) / QUIET_RAMP_S)
    return QUIET_FROM_S + (max(slowest, QUIET_FROM_S) - QUIET_FROM_S) * ramp


def _awaiting(
    shares: Sequence[float], cost: float, since: float, *, lapses: bool = True
) -> Callable[[float], float]:
    """What each moment asks for while an event (distributed as `shares`) is awaited since
    `since`: the square-root gap of its hazard, at most `AWAIT_GAP_MAX_S`; nothing once it has
    become unlikely if it `lapses` (a reply may never come; an agent to a queued chat does)."""

    curve = _curve(tuple(shares))

    def want(at: float) -> float:
        rate, left = _hazard(curve, at - since)
        if left <= LIKELY_MIN:
            return math.inf if lapses else AWAIT_GAP_MAX_S
        if rate <= 0:
            return math.inf  # nothing comes now; the scan sees what comes next
        return min(AWAIT_GAP_MAX_S, math.sqrt(2 * cost / rate))

    return want


def wanted_gap(fleet: Histograms, turn: Turn, state: Spend, budget: Budget, now: float) -> float:
    """The gap the situation calls for, before the budget's limits: the longest that stays
    within what every moment it spans asks for (a window of likely replies ahead is not
    jumped over)."""
    # The quiet gap only grows with time and the typing gap holds until its cap: their
    # tightest moment is now. Awaited events are scanned ahead.
    tightest = min(budget.ceiling_s, _quiet_gap(turn, budget, now))
    if (typing_at := turn.typing_at) is not None and now - typing_at < TYPING_MAX_S:
        tightest = min(tightest, TYPING_GAP_S)
    cost = price(state, budget, now)
    wants: list[Callable[[float], float]] = []
    if turn.sent_at is not None:
        wants.append(_awaiting(likelihood(fleet, "reply", turn), cost, turn.sent_at))
    if turn.waiting_at is not None:
        joins = likelihood(fleet, "join", turn)
        wants.append(_awaiting(joins, cost, turn.waiting_at, lapses=False))
    for want in wants:
        step = 0.0
        while step < tightest:
            tightest = min(tightest, want(now + step))
            step += _SCAN_STEP_S
    return tightest


def next_delay(
    fleet: Histograms,
    turn: Turn,
    state: Spend,
    budget: Budget,
    now: float,
    *,
    readers: bool = True,
    failures: int = 0,
    retry_after_s: float | None = None,
    jitter: float = 0.0,
) -> float:
    """Seconds from the poll at `now` to the next. `jitter` is uniform in [0, 1)."""
    if failures > 0:
        # Equal jitter: retries of many chats spread out, never faster than the backoff.
        first = Backoff(first_s=budget.ceiling_s, max_s=budget.backoff_max_s)
        return max(restart_delay(failures, first, jitter), float(retry_after_s or 0))
    if not readers:
        return budget.keepalive_s
    gap = wanted_gap(fleet, turn, state, budget, now)
    rate = budget.reads_per_min / 60
    tokens = _tokens(state, budget, now)
    if tokens + gap * rate < 1:
        gap = (1 - tokens) / rate  # out of budget: wait for the next read's token
    return min(max(gap, budget.floor_s), budget.ceiling_s, budget.keepalive_s)
