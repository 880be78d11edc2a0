"""The store behind `guards.IdempotencyStore` shared by the fleet through Redis
(`RedisIdempotency`), bounded per client and in total.

Data model (each script touches the keys of ONE slot):

    <prefix>:{idem:<client>}:<key>  hash: fp, token (while in flight), answer; PX in flight /
                                    the answer's window
    <prefix>:{idem:<client>}:keys   sorted set of the client's keys, score = expiry (server
                                    ms): the per-client cap, counted exactly
    <prefix>:{idem}:count           hash: expiry bucket -> stored answers expiring in it: the
                                    fleet-wide cap, read at most once a second per instance

A client's entries share its hash tag, so a claim checks and counts them in one atomic script.
The fleet count is a global key, never touched by a script together with a client's keys: it
is raised after an answer is stored and read apart, so it may run a bucket behind or ahead.

It must not know HTTP or what the keys mean; Redis errors surface as `BusUnavailableError`.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.bus._calls import Runner
from app.bus._hub import check_chat
from app.bus.guards import IDEMPOTENCY_BUCKET_S, IDEMPOTENCY_COUNT_TTL_S, IdempotencyClaim

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Keeps the client's key set alive exactly as long as its latest entry.
_KEYS_TTL = """
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[2], last[2]) end
"""

# KEYS: entry, client's keys. ARGV: fingerprint, token, in_flight_ms, max_per_client, key,
# store_full (1: no new key), floor_per_client. Returns {'new'}, {'mismatch'}, {'in_flight'},
# {'done', answer}, {'full', ms until an entry frees, 'client'|'total'} or {'unkept'}.
BEGIN = (
    """
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp then
  if fp ~= ARGV[1] then return {'mismatch'} end
  local answer = redis.call('HGET', KEYS[1], 'answer')
  if answer then return {'done', answer} end
  return {'in_flight'}
end
"""
    + _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = redis.call('ZCARD', KEYS[2])
if held >= tonumber(ARGV[4]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'full', tostring(tonumber(first[2]) - now), 'client'}
end
if ARGV[6] == '1' then
  if held < tonumber(ARGV[7]) then return {'unkept'} end
  return {'full', '1000', 'total'}
end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[5])
"""
    + _KEYS_TTL
    + "return {'new'}\n"
)

# KEYS: entry, client's keys. ARGV: token, answer, keep_ms, key.
# Returns the answer's expiry (server ms) when stored, else 0.
FINISH = (
    """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'answer', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
    + _NOW
    + """
local expires = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], expires, ARGV[4])
"""
    + _KEYS_TTL
    + "return expires\n"
)

# KEYS: entry, client's keys. ARGV: token, key.
ABANDON = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: the fleet count. ARGV: bucket_ms, expires (server ms). One more answer expiring then.
COUNT_ADD = (
    _NOW
    + """
local bucket = math.ceil(tonumber(ARGV[2]) / tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], bucket, 1)
local ttl = bucket * tonumber(ARGV[1]) - now
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""
)

# KEYS: the fleet count. ARGV: bucket_ms. Drops past buckets; returns {stored answers, ms
# until the soonest bucket ends}.
COUNT_READ = (
    _NOW
    + """
local width = tonumber(ARGV[1])
local fields = redis.call('HGETALL', KEYS[1])
local total, soonest = 0, 0
for i = 1, #fields, 2 do
  local ends = tonumber(fields[i]) * width
  if ends <= now then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    total = total + tonumber(fields[i + 1])
    if soonest == 0 or ends - now < soonest then soonest = ends - now end
  end
end
return {total, soonest}
"""
)


class RedisIdempotency:
    """`IdempotencyStore` on Redis (plain, Sentinel or Cluster)."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        calls: Runner,
        *,
        prefix: str,
        instance: str,
        count_ttl_s: float = IDEMPOTENCY_COUNT_TTL_S,
    ) -> None:
        self._calls = calls
        self._prefix = prefix
        self._instance = instance
        self._count_ttl_s = count_ttl_s
        self._bucket_ms = round(IDEMPOTENCY_BUCKET_S * 1000)
        self._begin = redis.register_script(BEGIN)
        self._finish = redis.register_script(FINISH)
        self._abandon = redis.register_script(ABANDON)
        self._count_add = redis.register_script(COUNT_ADD)
        self._count_read = redis.register_script(COUNT_READ)
        self._count_key = f"{prefix}:{{idem}}:count"
        self._total = 0
        self._total_retry_s = 1.0
        self._total_at = -math.inf
        self._counting = asyncio.Lock()

    def _keys(self, client: str, key: str) -> list[str]:
        tag = f"{self._prefix}:{{idem:{check_chat(client)}}}"
        return [f"{tag}:{check_chat(key)}", f"{tag}:keys"]

    async def _read_total(self, *, wait: bool) -> tuple[int, float]:
        keys, args = [self._count_key], [self._bucket_ms]
        found = cast(
            list[Any],
            await self._calls.run(lambda: self._count_read(keys=keys, args=args), wait=wait),
        )
        return int(found[0]), int(found[1]) / 1000

    async def _store_total(self) -> int:
        """The fleet's stored answers, as read within the last `count_ttl_s` (one reader at a
        time per instance; the others wait for its answer)."""
        async with self._counting:
            if time.monotonic() - self._total_at >= self._count_ttl_s:
                # A customer waits for this: through a failover, like the claim after it.
                self._total, self._total_retry_s = await self._read_total(wait=True)
                self._total_at = time.monotonic()
            return self._total

    async def idempotency_begin(
        self,
        client: str,
        key: str,
        fingerprint: str,
        *,
        in_flight_s: float,
        max_per_client: int,
        max_total: int,
        floor_per_client: int = 0,
    ) -> IdempotencyClaim:
        keys = self._keys(client, key)
        full = await self._store_total() >= max_total
        token = f"{self._instance}:{secrets.token_hex(16)}"
        args: list[str | int] = [
            fingerprint,
            token,
            _ms(in_flight_s),
            max_per_client,
            key,
            int(full),
            floor_per_client,
        ]
        found = cast(list[str], await self._calls.run(lambda: self._begin(keys=keys, args=args)))
        state = found[0]
        if state == "new":
            return IdempotencyClaim("new", token)
        if state == "done":
            return IdempotencyClaim("done", answer=found[1])
        if state == "unkept":
            return IdempotencyClaim("unkept")
        if state == "full":
            if found[2] == "client":
                return IdempotencyClaim("full", retry_after_s=int(found[1]) / 1000, limit="client")
            return IdempotencyClaim("full", retry_after_s=self._total_retry_s, limit="total")
        return IdempotencyClaim("mismatch" if state == "mismatch" else "in_flight")

    async def idempotency_finish(
        self, client: str, key: str, token: str, answer: str, keep_s: float
    ) -> bool:
        keys = self._keys(client, key)
        args: list[str | int] = [token, answer, _ms(keep_s), key]
        expires = int(await self._calls.run(lambda: self._finish(keys=keys, args=args)))
        if not expires:
            return False
        count_keys = [self._count_key]
        count_args: list[str | int] = [self._bucket_ms, expires]
        await self._calls.run(lambda: self._count_add(keys=count_keys, args=count_args))
        # This instance's own answers count at once; the others' at the next read.
        self._total += 1
        return True

    async def idempotency_abandon(self, client: str, key: str, token: str) -> None:
        keys, args = self._keys(client, key), [token, key]
        await self._calls.run(lambda: self._abandon(keys=keys, args=args))

    async def idempotency_size(self) -> int:
        # For a scrape: no waiting through a failover.
        total, _ = await self._read_total(wait=False)
        return total


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
