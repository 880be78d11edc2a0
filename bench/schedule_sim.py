"""The shipped schedule simulated on the conversation model's scripts: where chat-bff's poller
would read and how late each class of event would reach a viewer, in milliseconds of CPU
instead of minutes of conversation. Beside it, a client polling state + messages every few
seconds at a random phase (the bench's baseline (a)).

Pure: no I/O, no clock. The poller's loop is replayed with the same pure functions it calls
(`app.core.schedule.next_turn`, `next_delay`, `spend`), the upstream's answers synthesised from the
script as the emulator writes them, the fleet's histograms learned as the chats go. What it
leaves out: network and scheduling time (a few ms per read) and the fleet snapshot's 10 s
cache. It shows where a schedule spends and loses before a bench run proves it on servers;
`tests/unit/test_schedule_sim.py` holds the shipped schedule to the baseline on it.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.bus.fleet import KINDS, HistogramKind, bucket_of, empty
from app.core.schedule import Budget, fresh_spend, next_delay, quiet_after_s, spend
from app.core.turn import Turn, next_turn
from app.models import TranscriptEntry
from bench.conversation_model import CLASSES, MODEL, Model, Step, run_scripts

POKE_S = 0.02  # a customer's send wakes the poller (app/core/poller.py POKE_COALESCE_S)
STATE_REFRESH_S = 30.0  # app/config/parts.py state_refresh_s
STATE_CHANGING = ("ParticipantJoined", "ParticipantLeft")
_WHO = {"customer": "Customer", "agent": "Agent", "bot": "External"}
_TYPES = {
    "SendStartTypingNotification": "TypingStarted",
    "SendStopTypingNotification": "TypingStopped",
    "SendMessage": "Text",
    "join": "ParticipantJoined",
    "typing_on": "TypingStarted",
    "typing_off": "TypingStopped",
    "say": "Text",
    "leave": "ParticipantLeft",
    "bot_say": "Text",
}


@dataclass(frozen=True, slots=True)
class Posted:
    """One upstream transcript entry: its commit time, body, and the class a viewer waits
    for ("" for none)."""

    at: float
    body: dict[str, Any]
    kind: str


def transcript(script: list[Step]) -> list[Posted]:
    """The upstream transcript a script writes (the agent's join adds its greeting)."""
    posted: list[Posted] = []
    for step in script:
        who = {"type": _WHO[step.actor]}
        body: dict[str, Any] = {"type": _TYPES[step.action], "from": who}
        if step.text:
            body["text"] = step.text
        posted.append(Posted(step.at, body, step.kind))
        if step.action == "join":
            posted.append(Posted(step.at, {"type": "Text", "from": who, "text": "hello"}, ""))
    return posted


@dataclass
class Outcome:
    reads: int = 0
    minutes: float = 0.0
    delays: dict[str, list[float]] = field(default_factory=dict)

    def add(self, other: Outcome) -> None:
        self.reads += other.reads
        self.minutes += other.minutes
        for kind, values in other.delays.items():
            self.delays.setdefault(kind, []).extend(values)

    @property
    def reads_per_min(self) -> float:
        return self.reads / self.minutes if self.minutes else 0.0


class Fleet:
    """The fleet's histograms, undecayed: a simulated run is shorter than a half-life."""

    def __init__(self) -> None:
        self.weights = {kind: list(w) for kind, w in empty().items()}

    def observe(self, kind: HistogramKind, seconds: float) -> None:
        self.weights[kind][bucket_of(seconds)] += 1

    def snapshot(self) -> dict[HistogramKind, tuple[float, ...]]:
        return {kind: tuple(self.weights[kind]) for kind in KINDS}


def _customer_sends(script: list[Step]) -> Iterator[float]:
    yield from (s.at for s in script if s.action == "SendMessage")


def simulate_bff(script: list[Step], budget: Budget, fleet: Fleet) -> Outcome:
    """chat-bff's poller on one chat, one viewer watching from RequestChat (at 0)."""
    posted = transcript(script)
    end_at = max(p.at for p in posted)
    sends = list(_customer_sends(script))
    out = Outcome(minutes=end_at / 60)
    turn, spent = Turn(), fresh_spend(budget, 0.0)
    previous: float | None = None
    waiting, seen, now = True, 0, 0.0
    last_state, last_activity = -1e9, 0.0
    while True:
        started = now
        new = [p for p in posted[seen:] if p.at <= now]
        seen += len(new)
        out.reads += 1
        for p in new:
            if p.kind:
                out.delays.setdefault(p.kind, []).append(now - p.at)
        types = {p.body["type"] for p in new}
        state_read = (
            previous is None
            or bool(types & set(STATE_CHANGING))
            or (
                now - last_activity >= quiet_after_s(budget) and now - last_state >= STATE_REFRESH_S
            )
        )
        if state_read:
            out.reads += 1
            spent = spend(spent, budget, now)
            last_state = now
        if "ParticipantLeft" in types:
            return out
        if any(p.body == {"type": "ParticipantJoined", "from": {"type": "Agent"}} for p in new):
            waiting = False
        if new:
            last_activity = now
        messages = [TranscriptEntry(seen - len(new) + k + 1, p.body) for k, p in enumerate(new)]
        turn, observed = next_turn(turn, messages, now=now, previous_poll=previous, waiting=waiting)
        for o in observed:
            fleet.observe(o.kind, o.seconds)
        previous = now
        spent = spend(spent, budget, started)
        delay = next_delay(fleet.snapshot(), turn, spent, budget, started, jitter=0.5)
        wake = started + delay
        poke = next((s for s in sends if started < s < wake), None)
        now = poke + POKE_S if poke is not None else wake
        if now > end_at + 60:
            return out


def simulate_baseline(script: list[Step], interval_s: float, rng: random.Random) -> Outcome:
    """A client polling state + messages every `interval_s` from a random phase."""
    posted = [p for p in transcript(script) if p.kind]
    end_at = max(p.at for p in posted)
    phase = rng.uniform(0, interval_s)
    out = Outcome(minutes=end_at / 60)
    polls = int((end_at - phase) // interval_s) + 2
    out.reads = 2 * polls
    for p in posted:
        k = max(0, int((p.at - phase) // interval_s) + 1)
        out.delays.setdefault(p.kind, []).append(phase + k * interval_s - p.at)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def run(
    seed: int, count: int, budget: Budget, model: Model = MODEL, baseline_s: float = 3.0
) -> dict[str, Outcome]:
    """chat-bff and the baseline over the same `count` scripts."""
    fleet = Fleet()
    rng = random.Random(seed)
    bff, base = Outcome(), Outcome()
    for k, script in enumerate(run_scripts(seed, count, model)):
        del k  # bot-first chats differ in their script only
        bff.add(simulate_bff(script, budget, fleet))
        base.add(simulate_baseline(script, baseline_s, rng))
    return {"chat-bff": bff, f"baseline {baseline_s:g} s": base}


def table(results: dict[str, Outcome]) -> str:
    lines = ["| arm | reads/min | " + " | ".join(CLASSES) + " |"]
    for name, out in results.items():
        cells = [
            f"{percentile(out.delays[c], 50):.2f}/{percentile(out.delays[c], 99):.2f}"
            for c in CLASSES
            if c in out.delays
        ]
        lines.append(f"| {name} | {out.reads_per_min:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep(seeds: range, budget: Budget, count: int = 12) -> str:
    """Over many seeded runs of `count` chats: in how many runs chat-bff's p50 and p99 are no
    later than the 3 s baseline's, per class; the mean reads ratio and p50s."""
    wins50 = dict.fromkeys(CLASSES, 0)
    wins99 = dict.fromkeys(CLASSES, 0)
    ratios, typed50, bot50 = [], [], []
    for seed in seeds:
        bff, base = run(seed * count, count, budget).values()
        ratios.append(bff.reads_per_min / base.reads_per_min)
        typed50.append(percentile(bff.delays["typed"], 50))
        bot50.append(percentile(bff.delays["bot"], 50))
        for c in CLASSES:
            wins50[c] += percentile(bff.delays[c], 50) <= percentile(base.delays[c], 50)
            wins99[c] += percentile(bff.delays[c], 99) <= percentile(base.delays[c], 99)
    n = len(seeds)
    head = f"{n} runs: reads {statistics.mean(ratios):.2f}x (max {max(ratios):.2f}x); "
    head += f"typed p50 {statistics.median(typed50):.2f}; bot p50 {statistics.median(bot50):.2f}"
    rows = [f"  {c:7s} p50 won {wins50[c]:3d}/{n}  p99 won {wins99[c]:3d}/{n}" for c in CLASSES]
    return "\n".join([head, *rows])


if __name__ == "__main__":  # pragma: no cover - a developer's tool
    import sys

    reads = float(sys.argv[1]) if len(sys.argv) > 1 else Budget().reads_per_min
    print(table(run(287182, 12, Budget(reads_per_min=reads))))
    print(sweep(range(40), Budget(reads_per_min=reads)))


def pooled(seeds: range, budget: Budget, count: int = 12) -> dict[str, Outcome]:
    """chat-bff and the 3 s baseline over many seeded runs, every event pooled."""
    bff, base = Outcome(), Outcome()
    for seed in seeds:
        # A run's conversation k has seed `seed + k`: runs `count` apart share none.
        ours, theirs = run(seed * count, count, budget).values()
        bff.add(ours)
        base.add(theirs)
    return {"chat-bff": bff, "baseline 3 s": base}
