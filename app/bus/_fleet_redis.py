"""The fleet's histograms of reply and join times on Redis (`fleet.FleetStats`).

Owns the Redis side of `FleetStats`: one hash per kind, all under the hash tag `{fleet}` so one
script reads them together on a Cluster, decayed on the server's clock.

    <prefix>:{fleet}:hist:<kind>   hash: b0..bN (decayed weights), at (server seconds of the
                                   last decay); expires after ten half-lives without news

It must not know what the times mean (`app/core/schedule.py` does) nor keep anything per chat.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.bus.fleet import BUCKETS, KINDS, HistogramKind, Histograms, bucket_of

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
