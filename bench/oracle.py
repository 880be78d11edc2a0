"""The oracle: the best any poller can do on a read budget, as a bound to report chat-bff
against. It knows the conversation model's distributions (`Model`), never the script's times:
what it knows of a chat is what a poller would (the commit time of each message its polls
returned, its own customer's sends, whether the chat starts with a bot), and from that, which
distribution the next reply comes from. Within each such phase it places its polls by dynamic
programming over a time grid, minimising expected delay + `lam` x expected reads; `calibrate`
picks `lam` so that a run's scripts cost the reads asked for. Like chat-bff, it reads at least
every `keepalive_s` (the upstream drops a customer nobody polls).

Pure: no I/O, no clock. It is simulated on the scripts rather than run against a server, so
its delays carry no network or scheduling time (a few ms in the oracle's favour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from bench.conversation_model import HANDOVER, MODEL, Model, Range, Step

KEEPALIVE_S = 10.0  # chat-bff's keep-alive cadence: a watched chat is read at least this often
GRID_POINTS = 400  # per phase; the grid step is the window / this, at least GRID_MIN_S
GRID_MIN_S = 0.01

Mixture = tuple[tuple[float, Range], ...]  # (weight, uniform range) from the phase's start


def phase_density(model: Model, phase: str) -> Mixture:
    """When the next event a viewer waits for comes, from the phase's start: `queue` (from
    RequestChat or the bot's hand-over: the agent joins), `bot` (from the customer's send in a
    bot-first chat before hand-over, or from RequestChat: the bot's answer), `reply` (from
    the customer's send: a typing notice or a canned answer), `typing` (from TypingStarted:
    the typed reply), `end` (from the agent's last reply, talk over: the agent leaves),
    `customer` (the customer's turn: nothing comes)."""
    share = model.canned_share
    table: dict[str, Mixture] = {
        "queue": ((1.0, model.queue_wait_s),),
        "bot": ((1.0, model.bot_reply_s),),
        "reply": ((share, model.canned_after_s), (1 - share, model.typing_after_s)),
        "typing": ((1.0, model.typing_for_s),),
        "end": ((1.0, model.end_after_s),),
        "customer": (),
    }
    return tuple(x for x in table[phase] if x[0] > 0)


def _cdf_and_mean(mixture: Mixture, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F(g) = P(T <= g) and M(g) = E[T; T <= g] on the grid."""
    cdf = np.zeros_like(grid)
    partial = np.zeros_like(grid)
    for weight, (lo, hi) in mixture:
        clipped = np.clip(grid, lo, hi)
        cdf += weight * (clipped - lo) / (hi - lo)
        partial += weight * (clipped**2 - lo**2) / (2 * (hi - lo))
    return cdf, partial


def place(
    mixture: Mixture,
    since: float,
    lam: float,
    keepalive_s: float = KEEPALIVE_S,
    *,
    pay_always: bool = False,
) -> list[float]:
    """Poll offsets (from the phase's start, after `since`) minimising E[delay] + lam x E[reads]
    for an event from `mixture`, given it has not come by `since`: the polls to make while it
    does not come. The last one is at the window's end (it has come by then for sure).

    A read is paid only if it is made, that is while the event has not come: so reads thin out
    where the event has probably come already (late in a uniform window they are cheap, and
    denser). With `pay_always` every planned read is paid, as for a fixed number of reads: a
    uniform window then gets them evenly spaced."""
    # Plans for a phase entered a few hundredths of a second apart are the same plan: cached.
    return list(_place(mixture, round(since, 1), round(lam, 6), keepalive_s, pay_always))


@lru_cache(maxsize=4096)
def _place(
    mixture: Mixture, since: float, lam: float, keepalive_s: float, pay_always: bool
) -> tuple[float, ...]:
    end = max(hi for _, (_, hi) in mixture)
    if not mixture:
        return ()
    if since >= end:
        return (since,)
    step = max(GRID_MIN_S, (end - since) / GRID_POINTS)
    n = math.ceil((end - since) / step)
    grid = since + np.arange(n + 1) * (end - since) / n
    cdf, partial = _cdf_and_mean(mixture, grid)
    survival = 1.0 - cdf
    reach = max(1, int(keepalive_s / ((end - since) / n) + 1e-9))
    # cost[i]: E[delay + lam * reads; T > grid[i]] from a poll at grid[i], unnormalised (the
    # probability of getting there included), so that each step's cost adds up linearly.
    cost = np.zeros(n + 1)
    best = np.full(n + 1, n)
    for i in range(n - 1, -1, -1):
        j = np.arange(i + 1, min(n, i + reach) + 1)
        late = grid[j] * (cdf[j] - cdf[i]) - (partial[j] - partial[i])
        total = lam * (1.0 if pay_always else survival[i]) + late + cost[j]
        # Of equal costs the latest: a read that cannot catch anything waits for the keep-alive.
        k = int(np.nonzero(total <= total.min() + 1e-12)[0][-1])
        cost[i], best[i] = total[k], j[k]
    polls, i = [], 0
    while i < n:
        i = int(best[i])
        polls.append(float(grid[i]))
    return tuple(polls)


@dataclass
class Result:
    polls: list[float] = field(default_factory=list)
    delays: dict[str, list[float]] = field(default_factory=dict)  # per class

    @property
    def reads(self) -> int:
        return len(self.polls)


def _phase_after(event: Step, talk_over: bool) -> str:
    """The phase a poller is in once it has seen `event` (the last of a poll's answer)."""
    if event.kind == "bot":
        return "queue" if event.text.endswith(HANDOVER) else "customer"
    if event.kind in ("typed", "canned"):
        return "end" if talk_over else "customer"
    return {"typing": "typing", "end": "over", "join": "customer"}[event.kind]


def simulate(
    script: list[Step],
    model: Model = MODEL,
    *,
    bot_first: bool,
    lam: float,
    keepalive_s: float = KEEPALIVE_S,
) -> Result:
    """The oracle's polls on one script, and each viewer-facing event's delay (first poll at or
    after its commit, minus the commit)."""
    events = [s for s in script if s.kind]
    sends = [s.at for s in script if s.action == "SendMessage"]
    result = Result()
    phase, start, now = ("bot" if bot_first else "queue"), 0.0, 0.0
    seen = 0  # events[:seen] have been delivered
    joined_at: float | None = None
    last_reply = 0.0
    while phase != "over":
        mixture = phase_density(model, phase)
        pending_sends = [s for s in sends if s > now]
        offsets = place(mixture, now - start, lam, keepalive_s) if mixture else []
        schedule = [start + x for x in offsets if start + x > now]
        if not schedule:  # nothing expected: keep-alive reads until the customer acts
            if not pending_sends and seen == len(events):
                break
            schedule = [now + keepalive_s]
        for at in schedule:
            if pending_sends and pending_sends[0] < at:
                # The customer's own send: the tab knows it without a read.
                now = start = pending_sends[0]
                phase = "bot" if bot_first and joined_at is None else "reply"
                break
            now = at
            result.polls.append(at)
            arrived = [e for e in events[seen:] if e.at <= at]
            if not arrived:
                continue
            for event in arrived:
                result.delays.setdefault(event.kind, []).append(at - event.at)
                if event.kind == "join":
                    joined_at = event.at
                if event.kind in ("typed", "canned", "join"):
                    last_reply = event.at
            seen += len(arrived)
            talk_over = joined_at is not None and last_reply - joined_at >= model.talk_s
            phase, start = _phase_after(arrived[-1], talk_over), arrived[-1].at
            break
    return result


def simulate_run(
    scripts: list[list[Step]], bot_first: list[bool], lam: float, model: Model = MODEL
) -> Result:
    """The oracle over a run's scripts: polls and delays pooled."""
    total = Result()
    for script, bot in zip(scripts, bot_first, strict=True):
        one = simulate(script, model, bot_first=bot, lam=lam)
        total.polls += one.polls
        for kind, delays in one.delays.items():
            total.delays.setdefault(kind, []).extend(delays)
    return total


def calibrate(
    scripts: list[list[Step]],
    bot_first: list[bool],
    reads: float,
    model: Model = MODEL,
    iterations: int = 14,
) -> tuple[float, Result]:
    """The oracle spending at most `reads` reads over the run (as close as bisection on its
    price of a read gets): its price and result."""
    lo, hi = math.log(1e-3), math.log(30.0)  # a cheaper read means more reads
    best: tuple[float, Result] | None = None
    for _ in range(iterations):
        mid = (lo + hi) / 2
        result = simulate_run(scripts, bot_first, math.exp(mid), model)
        if result.reads <= reads:
            best = (math.exp(mid), result)
            hi = mid
        else:
            lo = mid
    if best is None:
        lam = math.exp(hi)
        best = (lam, simulate_run(scripts, bot_first, lam, model))
    return best
