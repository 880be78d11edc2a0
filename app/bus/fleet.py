"""What the fleet has seen of reply times: small decayed histograms every instance shares.

Owns the `FleetStats` contract, the buckets (log-spaced edges, `HISTOGRAM_EDGES_S`) and the
implementation in the process (`MemoryFleetStats`); the one on Redis is `_fleet_redis`.
Weights halve every `half_life_s`, so the histograms follow the time of day. It must not know
what the times mean for polling (`app/core/schedule.py` does), keep anything per chat, nor import
redis (the memory bus must run without it).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from typing import Literal, Protocol, get_args

# "reply": a customer's message to an agent's next message; "auto": to the next message of a
# bot or another automatic party (or the chat's start to its greeting); "join": a chat's start
# (RequestChat) to the agent joining it.
HistogramKind = Literal["reply", "auto", "join"]
KINDS: tuple[HistogramKind, ...] = get_args(HistogramKind)
# Upper edges of the buckets, in seconds (about x1.8 apart); one bucket more holds the rest.
HISTOGRAM_EDGES_S: tuple[float, ...] = (0.5, 0.9, 1.6, 2.8, 5, 9, 16, 28, 50, 90, 160, 300)
BUCKETS = len(HISTOGRAM_EDGES_S) + 1
# kind -> decayed weight per bucket (BUCKETS of them); every kind present.
Histograms = Mapping[HistogramKind, tuple[float, ...]]


def bucket_of(seconds: float) -> int:
    """The bucket holding `seconds`: the first whose upper edge is >= it."""
    return bisect.bisect_left(HISTOGRAM_EDGES_S, max(0.0, seconds))


def empty() -> dict[HistogramKind, tuple[float, ...]]:
    return {kind: (0.0,) * BUCKETS for kind in KINDS}


class FleetStats(Protocol):
    """Durations the fleet observed, per kind.

    Guarantees:
    * `observe` adds weight 1 to the bucket of `seconds` (atomic; from any instance).
    * `snapshot` returns every kind's weights, each decayed by half every `half_life_s` since
      it was observed; a kind never observed reads as zeros.
    * Both are cheap (one round trip) but meant for occasional use: callers cache snapshots.
    """

    async def observe(self, kind: HistogramKind, seconds: float) -> None: ...

    async def snapshot(self) -> Histograms: ...


class MemoryFleetStats:
    """`FleetStats` for one process, on `time.monotonic()`."""

    def __init__(self, half_life_s: float) -> None:
        self._half_life_s = half_life_s
        self._weights = {kind: [0.0] * BUCKETS for kind in KINDS}
        self._at = {kind: time.monotonic() for kind in KINDS}

    def _decay(self, kind: HistogramKind, now: float) -> list[float]:
        factor = 0.5 ** (max(0.0, now - self._at[kind]) / self._half_life_s)
        self._weights[kind] = [w * factor for w in self._weights[kind]]
        self._at[kind] = now
        return self._weights[kind]

    async def observe(self, kind: HistogramKind, seconds: float) -> None:
        self._decay(kind, time.monotonic())[bucket_of(seconds)] += 1.0

    async def snapshot(self) -> Histograms:
        now = time.monotonic()
        return {kind: tuple(self._decay(kind, now)) for kind in KINDS}
