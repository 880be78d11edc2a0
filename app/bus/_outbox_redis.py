"""The webhook outbox of the Redis bus: one queue per kind, each bounded by its quota (items and
bytes), shared by the fleet, every operation logarithmic in the backlog.

Data model (every key carries the hash tag `{outbox}`: one Cluster slot, and the scripts here
touch nothing else):

    <prefix>:{outbox}:due:<kind>    sorted set, member id, score = due time (server ms)
    <prefix>:{outbox}:items:<kind>  hash: id -> payload (HLEN: the kind's item count)
    <prefix>:{outbox}:done:<kind>   sorted set of delivered ids, score = when to forget them
    <prefix>:{outbox}:bytes         hash: kind -> bytes held (UTF-8 of ids and payloads)
    <prefix>:{outbox}:meta          hash: c:<id> claim token, a:<id> attempts

Claims read the head of one kind's `due` set (ZRANGE BYSCORE with LIMIT), never a whole set;
puts and dones are O(log n) plus the expired or surplus `done` entries they drop. Times are
the server's clock. Before per-kind queues, every kind shared `due`, `items` and `done`
without a suffix: items left there by an older version are moved into their kind's queue
(`ADOPT`, at most once a minute per instance while any are left), so an upgrade loses none.
It must not know HTTP, the webhooks or what a payload holds.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.bus._calls import Runner
from app.bus._outbox_memory import check_kind
from app.bus.hooks import Claim, ClaimBatch, OutboxHeld, OutboxItem, OutboxQuota
from app.errors import OutboxFullError

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: due, items, done, bytes. ARGV: id, payload, max_items, max_bytes, kind.
# Returns 1 stored, 0 known already, -1 at the item cap, -2 at the byte cap.
PUT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
local n = redis.call('HLEN', KEYS[2])
-- Nothing held, nothing counted: heals a count left behind by an evicted items hash.
if n == 0 then redis.call('HDEL', KEYS[4], ARGV[5]) end
if n >= tonumber(ARGV[3]) then return -1 end
local size = #ARGV[1] + #ARGV[2]
if tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '0') + size > tonumber(ARGV[4]) then
  return -2
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HINCRBY', KEYS[4], ARGV[5], size)
return 1
"""
)

# KEYS: due, items, meta, bytes. ARGV: limit, claim_ms, token, kind. Claims due items by
# moving their due time claim_ms ahead; an unfinished claim thus expires by itself.
# Returns {ms until the next due item or -1, {id, payload, attempt, ...}, items, bytes}.
CLAIM = (
    _NOW
    + """
local ids = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', KEYS[2], id)
  if payload then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    redis.call('HSET', KEYS[3], 'c:' .. id, ARGV[3])
    local attempt = redis.call('HINCRBY', KEYS[3], 'a:' .. id, 1)
    out[#out + 1] = id
    out[#out + 1] = payload
    out[#out + 1] = attempt
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if #head > 0 then wait = math.max(0, tonumber(head[2]) - now) end
return {wait, out, redis.call('HLEN', KEYS[2]), redis.call('HGET', KEYS[4], ARGV[4]) or '0'}
"""
)

# KEYS: due, items, done, meta, bytes. ARGV: id, token, done_ttl_ms, remember, kind.
# Returns 1, or 0 if not claimed.
DONE = (
    _NOW
    + """
if redis.call('HGET', KEYS[4], 'c:' .. ARGV[1]) ~= ARGV[2] then return 0 end
local size = #ARGV[1] + redis.call('HSTRLEN', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[5], ARGV[5], -size) <= 0 then
    redis.call('HDEL', KEYS[5], ARGV[5])
  end
end
redis.call('HDEL', KEYS[4], 'c:' .. ARGV[1], 'a:' .. ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, over - 1) end
return 1
"""
)

# KEYS: due, meta. ARGV: id, token, delay_ms. Returns 1, or 0 if not claimed.
RETRY = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], 'c:' .. ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
redis.call('HDEL', KEYS[2], 'c:' .. ARGV[1])
return 1
"""
)

# KEYS: the old shared due, items and done; bytes; push due, push items; offline due,
# offline items. ARGV: batch. The old layout only ever held these two kinds, named by their
# ids' prefix. Moves up to `batch` items (due time, attempts and claims kept: `meta` is the
# same key); once none is left, drops the old keys. Returns how many are left.
ADOPT = """
local queues = {push = {KEYS[5], KEYS[6]}, offline = {KEYS[7], KEYS[8]}}
local rows = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #rows, 2 do
  local id, due = rows[i], rows[i + 1]
  local payload = redis.call('HGET', KEYS[2], id)
  local queue = queues[string.match(id, '^(%a+):') or '']
  if payload and queue then
    redis.call('HSET', queue[2], id, payload)
    redis.call('ZADD', queue[1], due, id)
    redis.call('HINCRBY', KEYS[4], string.match(id, '^(%a+):'), #id + #payload)
  end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
return left
"""

# How often an instance looks for items of the old layout, and how many it moves at once.
ADOPT_EVERY_S = 60.0
ADOPT_BATCH = 500


class RedisOutbox:
    """`Outbox` through Redis, on the bus's client and its bounded calls (`Runner`)."""

    def __init__(
        self, redis: Redis | RedisCluster, calls: Runner, *, prefix: str, instance: str
    ) -> None:
        self._calls = calls
        self._prefix = prefix
        self._instance = instance
        self._put = redis.register_script(PUT)
        self._claim = redis.register_script(CLAIM)
        self._done = redis.register_script(DONE)
        self._retry = redis.register_script(RETRY)
        self._adopt = redis.register_script(ADOPT)
        self._redis = redis
        self._next_adopt = 0.0

    def _key(self, name: str, kind: str | None = None) -> str:
        # One hash tag for the whole outbox: its scripts touch one Cluster slot, none of a chat.
        suffix = "" if kind is None else f":{check_kind(kind)}"
        return f"{self._prefix}:{{outbox}}:{name}{suffix}"

    async def outbox_put(self, item: OutboxItem, quota: OutboxQuota) -> bool:
        kind = item.kind
        keys = [self._key("due", kind), self._key("items", kind), self._key("done", kind)]
        keys.append(self._key("bytes"))
        args: list[str | int] = [item.id, item.payload, quota.max_items, quota.max_bytes, kind]
        stored = int(await self._calls.run(lambda: self._put(keys=keys, args=args)))
        if stored < 0:
            raise OutboxFullError(kind, "items" if stored == -1 else "bytes")
        return stored == 1

    async def outbox_claim(self, kind: str, limit: int, claim_s: float) -> ClaimBatch:
        await self._adopt_legacy()
        keys = [self._key("due", kind), self._key("items", kind), self._key("meta")]
        keys.append(self._key("bytes"))
        token = f"{self._instance}:{secrets.token_hex(8)}"
        args: list[str | int] = [int(limit), max(1, round(claim_s * 1000)), token, kind]
        answer = await self._calls.run(lambda: self._claim(keys=keys, args=args))
        wait, flat, items, size = cast(list[Any], answer)
        claims = [
            Claim(str(flat[i]), str(flat[i + 1]), token, int(flat[i + 2]), kind)
            for i in range(0, len(flat), 3)
        ]
        next_due = None if int(wait) < 0 else int(wait) / 1000
        return ClaimBatch(claims, next_due, OutboxHeld(int(items), int(size)))

    async def outbox_done(self, claim: Claim, *, done_ttl_s: float, remember: int) -> bool:
        kind = claim.kind
        keys = [self._key("due", kind), self._key("items", kind), self._key("done", kind)]
        keys += [self._key("meta"), self._key("bytes")]
        ttl_ms = max(1, round(done_ttl_s * 1000))
        args: list[str | int] = [claim.id, claim.token, ttl_ms, max(0, remember), kind]
        return bool(await self._calls.run(lambda: self._done(keys=keys, args=args)))

    async def outbox_retry(self, claim: Claim, delay_s: float) -> bool:
        keys = [self._key("due", claim.kind), self._key("meta")]
        args: list[str | int] = [claim.id, claim.token, max(1, round(delay_s * 1000))]
        return bool(await self._calls.run(lambda: self._retry(keys=keys, args=args)))

    async def outbox_held(self, kind: str) -> OutboxHeld:
        items_key, bytes_key = self._key("items", kind), self._key("bytes")
        redis = self._redis
        items = await self._calls.run(lambda: redis.hlen(items_key))
        size = await self._calls.run(lambda: redis.hget(bytes_key, kind))
        return OutboxHeld(int(items), int(size or 0))

    async def _adopt_legacy(self) -> None:
        now = time.monotonic()
        if now < self._next_adopt:
            return
        self._next_adopt = now + ADOPT_EVERY_S
        keys = [self._key(n) for n in ("due", "items", "done", "bytes")]
        keys += [self._key(n, k) for k in ("push", "offline") for n in ("due", "items")]
        left = 1
        while left:
            left = int(await self._calls.run(lambda: self._adopt(keys=keys, args=[ADOPT_BATCH])))
