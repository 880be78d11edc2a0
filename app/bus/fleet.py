"""What the fleet has seen of reply times: small decayed histograms every instance shares.

Owns the `FleetStats` contract, the buckets (log-spaced edges, `HISTOGRAM_EDGES_S`) and both
implementations: in the process (`MemoryFleetStats`) and on Redis (`RedisFleetStats`: one hash
per kind, all under the hash tag `{fleet}` so one script reads them together on a Cluster).
Weights halve every `half_life_s`, so the histograms follow the time of day. It must not know
what the times mean for polling (`app/schedule.py` does) nor keep anything per chat.

Redis data model:

    <prefix>:{fleet}:hist:<kind>   hash: b0..bN (decayed weights), at (server seconds of the
                                   last decay); expires after ten half-lives without news
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar, get_args

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

T = TypeVar("T")

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


# KEYS: the kind's hash. ARGV: bucket field, half-life s, ttl ms.
# Decays every bucket to the server's now, then adds 1 to one of them.
OBSERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
if now > at then
  local factor = 0.5 ^ ((now - at) / tonumber(ARGV[2]))
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i] ~= 'at' then
      redis.call('HSET', KEYS[1], all[i], string.format('%.9g', tonumber(all[i + 1]) * factor))
    end
  end
end
redis.call('HSET', KEYS[1], 'at', string.format('%.6f', now))
redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: every kind's hash (one slot). ARGV: half-life s, bucket count.
# Returns, per key, its weights decayed to now, as strings (Lua numbers would be truncated).
SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for k = 1, #KEYS do
  local at = tonumber(redis.call('HGET', KEYS[k], 'at') or now)
  local factor = 0.5 ^ (math.max(0, now - at) / tonumber(ARGV[1]))
  for b = 0, tonumber(ARGV[2]) - 1 do
    local w = tonumber(redis.call('HGET', KEYS[k], 'b' .. b) or '0')
    table.insert(out, string.format('%.9g', w * factor))
  end
end
return out
"""

Runner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


class RedisFleetStats:
    """`FleetStats` through Redis; `run` bounds each call in time (the bus's `Calls.run`)."""

    def __init__(
        self, redis: Redis | RedisCluster, run: Runner, *, prefix: str, half_life_s: float
    ) -> None:
        self._run = run
        self._half_life_s = half_life_s
        self._keys = {kind: f"{prefix}:{{fleet}}:hist:{kind}" for kind in KINDS}
        self._observe = redis.register_script(OBSERVE)
        self._snapshot = redis.register_script(SNAPSHOT)

    async def observe(self, kind: HistogramKind, seconds: float) -> None:
        keys = [self._keys[kind]]
        args: list[str | int] = [
            f"b{bucket_of(seconds)}",
            repr(self._half_life_s),
            round(self._half_life_s * 1e4),
        ]
        await self._run(lambda: self._observe(keys=keys, args=args))

    async def snapshot(self) -> Histograms:
        keys = [self._keys[kind] for kind in KINDS]
        args: list[str | int] = [repr(self._half_life_s), BUCKETS]
        flat = await self._run(lambda: self._snapshot(keys=keys, args=args))
        values = [float(v) for v in flat]
        return {
            kind: tuple(values[i * BUCKETS : (i + 1) * BUCKETS]) for i, kind in enumerate(KINDS)
        }
