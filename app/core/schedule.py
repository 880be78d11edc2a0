"""When to poll next: a pure function of what is likely to arrive and of the read budget.

A poll is worth its read where something is likely to arrive before the next one. A reply to
the customer's message (a bot or an auto-acknowledgement within seconds, a canned answer, a
typed one) and an agent joining a queued chat come with no warning, at times the fleet has
measured (`app/bus/fleet.py`: histograms of "customer message -> an agent's next message", "->
a bot's", and "RequestChat -> agent joined"). From such a histogram, the chance per second
that the event arrives now, given it has not yet (its hazard h), sets the gap:
sqrt(2 * price / h), the gap that balances the delay a poll saves against what it costs (a
dense window right after a send where bots answer, wider gaps later). While anything may come
(a reply is due, the chat waits for an agent, or the customer is in a conversation) the gap
never exceeds `WATCH_GAP_S`, so no event is seen later than by a client polling every 3 s. A
typing agent gets fast polls (capped in time); while the customer types in their turn the
agent waits, and gaps stretch; a chat whose customer went silent stretches toward the
ceiling. A chat whose last reply came within `BOT_REPLY_S` is talking to a bot: its own
history outweighs the fleet's.

The budget: reads per chat-minute while someone watches, as a token bucket holding `BURST_S`
seconds' worth. The fuller the bucket, the cheaper a read (`price`); an empty bucket
stretches the gap until a token is back. Gaps stay within [floor, ceiling]. With no reader
anywhere, the keep-alive cadence only; after failures, backoff with jitter, at least the
Retry-After.

Nothing here keeps state or reads a clock: `Turn` (`app/core/turn.py`) is the chat's recent
events, `Spend` (the bucket) is updated by `spend`; the poller owns the timing and the I/O.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from app.bus.fleet import BUCKETS, HISTOGRAM_EDGES_S, HistogramKind, Histograms
from app.core.turn import Turn
from app.supervision import Backoff, restart_delay

# An agent's typing notice: a reply is seconds away, for at most this long per notice.
TYPING_GAP_S = 1.0
TYPING_MAX_S = 30.0
# The widest gap while something may come: a client polling every 3 s sees an event 1.5 s
# late at the median and, over a dozen events, about 2.8 s late at the worst; this stays
# under both, so no kind of event is seen later than by such a client.
WATCH_GAP_S = 2.5
# "Still likely": more than this share of the events not yet arrived.
LIKELY_MIN = 0.03
# The customer typing in their turn: the agent waits for the message (for at most this long
# per notice), so nothing is likely to come and gaps may stretch to the ceiling.
CUSTOMER_TYPING_MAX_S = 30.0
# A chat with no news of any kind for this long goes quiet (the longest silences of a live
# conversation are a customer or an agent thinking), reaching its quiet cadence this much later.
QUIET_FROM_S = 3.0
QUIET_RAMP_S = 20.0
# A customer who wrote or typed this recently is in a conversation: whatever the agent does
# next (a follow-up, ending the chat) is awaited at `WATCH_GAP_S`. A chat whose customer is
# silent longer (an agent posting to a customer who went away) gets the quiet cadence.
ENGAGED_S = 120.0
# The read budget's bucket holds this many seconds of reads: enough for a burst of dense
# polls after a send, not enough to lift a chat's reads over the budget for long.
BURST_S = 20.0
# The price of a read, in seconds of delay it must save, with a full bucket at the default
# budget: sets a bot's window to gaps of about 0.6-0.8 s.
PRICE_S = 0.2
DEFAULT_READS_PER_MIN = 28.0
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
class Spend:
    """The read budget's token bucket: `tokens` at time `at` (capacity: one minute's reads)."""

    tokens: float
    at: float


def quiet_after_s(budget: Budget) -> float:
    """How long after its last news a chat counts as quiet: when its gaps have stretched
    (`QUIET_RAMP_S`), or after a few of its longest gaps if the ceiling is short."""
    return min(QUIET_RAMP_S, 2.5 * budget.ceiling_s)


def capacity(budget: Budget) -> float:
    """The bucket's size: `BURST_S` seconds of reads."""
    return budget.reads_per_min * BURST_S / 60


def fresh_spend(budget: Budget, now: float) -> Spend:
    return Spend(capacity(budget), now)


def _tokens(spend: Spend, budget: Budget, now: float) -> float:
    rate = budget.reads_per_min / 60
    return min(capacity(budget), spend.tokens + max(0.0, now - spend.at) * rate)


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


# With no fleet data yet (public product documentation of bot and contact-center platforms):
# bots and acknowledgements answer in 0.5-3 s, agents' canned answers in a few seconds to tens,
# typed replies in 8-40 s; an agent joins 10-300 s after RequestChat.
BOT_PRIOR = _uniform(0.3, 3.0)
PRIORS: dict[HistogramKind, tuple[float, ...]] = {
    "reply": _mix((0.4, _uniform(2.0, 30.0)), (0.6, _uniform(8.0, 40.0))),
    "auto": BOT_PRIOR,
    "join": _uniform(10.0, 300.0),
}


def _normalised(weights: Sequence[float]) -> tuple[float, ...]:
    total = sum(weights)
    return tuple(w / total for w in weights) if total > 0 else (0.0,) * len(weights)


def likelihood(fleet: Histograms, kind: HistogramKind, turn: Turn) -> tuple[float, ...]:
    """The distribution (bucket shares) of the time to the next `kind` event in this chat:
    the fleet's histogram blended with the prior, and for a chat whose last reply came
    within `BOT_REPLY_S`, mostly a bot's."""
    bot = kind != "join" and turn.last_reply_s is not None and turn.last_reply_s <= BOT_REPLY_S
    seen = fleet.get(kind)
    return _likelihood(kind, _NOTHING_SEEN if seen is None else tuple(seen), bot)


# Every poll of every chat asks, with one fleet snapshot for all of them (it changes every
# 10 s at most): computed once per snapshot, not once per poll.
@functools.lru_cache(maxsize=64)
def _likelihood(kind: HistogramKind, seen: tuple[float, ...], bot: bool) -> tuple[float, ...]:
    blended = _normalised([f + PRIOR_WEIGHT * p for f, p in zip(seen, PRIORS[kind], strict=True)])
    return _mix((BOT_WEIGHT, BOT_PRIOR), (1 - BOT_WEIGHT, blended)) if bot else blended


_NOTHING_SEEN = (0.0,) * BUCKETS
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
    fill = max(_tokens(state, budget, now), 0.0) / capacity(budget)
    return PRICE_S * DEFAULT_READS_PER_MIN / budget.reads_per_min / max(fill, 0.1)


def _quiet_gap(turn: Turn, budget: Budget, at: float) -> float:
    """The gap for a chat where nothing in particular is awaited. In a conversation (the
    customer wrote or typed within `ENGAGED_S`) `WATCH_GAP_S`: the agent may write or end the
    chat at any moment. Otherwise from `QUIET_FROM_S` after the last news, stretching toward
    the ceiling over `QUIET_RAMP_S` (a bigger budget keeps quiet chats polled faster)."""
    if turn.customer_at is not None and at - turn.customer_at < ENGAGED_S:
        return WATCH_GAP_S
    slowest = min(budget.ceiling_s, budget.ceiling_s * DEFAULT_READS_PER_MIN / budget.reads_per_min)
    if turn.news_at is None:
        return slowest
    ramp = min(1.0, max(0.0, at - turn.news_at) / QUIET_RAMP_S)
    return QUIET_FROM_S + (max(slowest, QUIET_FROM_S) - QUIET_FROM_S) * ramp


def _agent_waits(turn: Turn, now: float) -> bool:
    """The customer types in their turn (no reply due, no wait for an agent): the agent waits
    for their message."""
    typing_at = turn.customer_typing_at
    return (
        typing_at is not None
        and now - typing_at < CUSTOMER_TYPING_MAX_S
        and turn.sent_at is None
        and turn.waiting_at is None
    )


@functools.lru_cache(maxsize=64)
def _breaks(curve: Curve) -> tuple[float, ...]:
    """Where what an awaited event asks for may jump (elapsed seconds): the bucket edges and
    the moment it becomes unlikely. In between it only shrinks, as the hazard only grows."""
    density, before = curve
    lapse = [
        low + (1.0 - LIKELY_MIN - done) / d
        for d, done, low, high in zip(density, before, _LOWS, _HIGHS, strict=True)
        if d > 0 and low < low + (1.0 - LIKELY_MIN - done) / d < high
    ]
    return tuple(sorted({*HISTOGRAM_EDGES_S, *lapse, _LAST_EDGE_S}))


def _longest_gap(
    want: Callable[[float], float], breaks: Sequence[float], since: float, now: float, limit: float
) -> float:
    """The longest gap from `now`, at most `limit`, within what every moment it spans asks
    for. Between two breaks the asks only shrink: each stretch is checked at its last moment,
    and where the gap would overrun what that asks, the crossing is found by bisection."""
    gap = limit
    start = now
    for brk in (*(since + b for b in breaks if since + b > now), math.inf):
        if start - now >= gap:
            break
        last = min(brk - 1e-6, now + gap)
        allowed = want(last)
        if allowed >= last - now:
            gap = min(gap, allowed)
        elif want(start) <= start - now:
            return max(start - now, _SCAN_STEP_S)  # poll as the denser stretch begins
        else:
            low, high = start - now, last - now
            for _ in range(8):  # to within a hundredth of the await cap
                middle = (low + high) / 2
                low, high = (middle, high) if want(now + middle) >= middle else (low, middle)
            return min(gap, low)
        start = brk
    return gap


def _awaiting(
    shares: Sequence[float], cost: float, since: float, *, lapses: bool = True
) -> tuple[Callable[[float], float], tuple[float, ...]]:
    """What each moment asks for while an event (distributed as `shares`) is awaited since
    `since`: the square-root gap of its hazard, at most `WATCH_GAP_S`; nothing once it has
    become unlikely if it `lapses` (a reply may never come; an agent to a queued chat does).
    With the moments where that may jump."""

    curve = _curve(tuple(shares))

    def want(at: float) -> float:
        rate, left = _hazard(curve, at - since)
        if left <= LIKELY_MIN:
            return math.inf if lapses else WATCH_GAP_S
        if rate <= 0:
            return math.inf  # nothing comes now; the scan sees what comes next
        return min(WATCH_GAP_S, math.sqrt(2 * cost / rate))

    return want, _breaks(curve)


def wanted_gap(fleet: Histograms, turn: Turn, state: Spend, budget: Budget, now: float) -> float:
    """The gap the situation calls for, before the budget's limits: the longest that stays
    within what every moment it spans asks for (a window of likely replies ahead is not
    jumped over)."""
    # The quiet gap only grows with time and the typing gap holds until its cap: their
    # tightest moment is now. Awaited events are scanned ahead.
    tightest = budget.ceiling_s
    if not _agent_waits(turn, now):
        tightest = min(tightest, _quiet_gap(turn, budget, now))
    if (typing_at := turn.typing_at) is not None and now - typing_at < TYPING_MAX_S:
        tightest = min(tightest, TYPING_GAP_S)
    cost = price(state, budget, now)
    if turn.sent_at is not None:
        replies = likelihood(fleet, "reply" if turn.agent else "auto", turn)
        want, breaks = _awaiting(replies, cost, turn.sent_at)
        tightest = _longest_gap(want, breaks, turn.sent_at, now, tightest)
    if turn.waiting_at is not None:
        joins = likelihood(fleet, "join", turn)
        want, breaks = _awaiting(joins, cost, turn.waiting_at, lapses=False)
        tightest = _longest_gap(want, breaks, turn.waiting_at, now, tightest)
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
