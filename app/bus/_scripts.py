"""Lua scripts of the Redis bus: each one is a single atomic step on the server.

Cluster rule: every script touches keys of ONE hash slot only, and names every key it touches
in KEYS (Redis routes the call by them and refuses a key of another slot). The chat scripts
touch the keys of one chat (all hash-tagged `{chat}`); COMMIT also publishes on the chat's
channel, which carries the same tag (SPUBLISH on a Cluster, where the channel must be in the
script's slot). The interest scripts touch only the global interest set; each limit script one
counter key (the idempotency scripts are `_idempotency_redis`'s, one client's keys each). User
data (message bodies, state JSON) is passed as opaque strings and spliced into the event JSON
by concatenation, never decoded by Lua: cjson would round numbers to 14 digits.
"""

from __future__ import annotations

# KEYS: lease, epoch. ARGV: token, ttl_ms, retention_ms. Returns the new epoch, or nil when held.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return epoch
"""

# KEYS: lease. ARGV: token, ttl_ms. Returns 1 when still held (and extended), else 0.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease, meta, log, epoch.
# ARGV: token, retention_ms, channel, state_json|'', status|'', ended '1'|'0',
#       'PUBLISH'|'SPUBLISH', max_messages, max_bytes, ended_retention_ms, then index,
#       body_json pairs in ascending index order.
# Returns nil when the fence no longer holds the lease, else {the published events as a JSON
# list (`app.events`' wire format, byte for byte: `encode_events` is its Python twin), bytes
# of message text held, messages dropped by the caps, ended 0|1}.
# meta's `bytes` is the text held in the log and `floor` the highest index dropped from it; a
# log gone while its meta stayed (an ended chat's retention, a budget drop, an eviction) holds
# nothing, and nothing up to the cursor.
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local meta, log = KEYS[2], KEYS[3]
local known = redis.call('HMGET', meta, 'cursor', 'floor', 'bytes', 'ended')
local prev = known[1] or '0'
local cursor = tonumber(prev)
local floor = tonumber(known[2] or '0')
local held = tonumber(known[3] or '0')
local resized = false
if held > 0 or cursor > floor then
  if redis.call('EXISTS', log) == 0 then
    held = 0
    floor = cursor
    resized = true
  end
end
local out = {}
for i = 11, #ARGV, 2 do
  local index = tonumber(ARGV[i])
  if index > cursor then
    redis.call('ZADD', log, index, ARGV[i] .. ':' .. ARGV[i + 1])
    held = held + #ARGV[i + 1]
    resized = true
    out[#out + 1] =
      '{"k":"message","i":' .. ARGV[i] .. ',"p":' .. prev .. ',"d":' .. ARGV[i + 1] .. '}'
    cursor = index
    prev = ARGV[i]
  end
end
if #out > 0 then redis.call('HSET', meta, 'cursor', prev) end
local dropped = 0
if resized then
  while held > tonumber(ARGV[9]) or redis.call('ZCARD', log) > tonumber(ARGV[8]) do
    local oldest = redis.call('ZPOPMIN', log)
    if #oldest == 0 then
      held = 0
      break
    end
    held = held - (#oldest[1] - string.find(oldest[1], ':', 1, true))
    floor = tonumber(oldest[2])
    dropped = dropped + 1
  end
  redis.call('HSET', meta, 'bytes', held, 'floor', floor)
end
if ARGV[4] ~= '' and redis.call('HGET', meta, 'state') ~= ARGV[4] then
  redis.call('HSET', meta, 'state', ARGV[4])
  out[#out + 1] = '{"k":"state","d":' .. ARGV[4] .. '}'
end
if ARGV[5] ~= '' and (redis.call('HGET', meta, 'status') or 'ok') ~= ARGV[5] then
  redis.call('HSET', meta, 'status', ARGV[5])
  out[#out + 1] = '{"k":"status","d":{"upstream":"' .. ARGV[5] .. '"}}'
end
local ended = known[4] == '1'
if ARGV[6] == '1' and not ended then
  ended = true
  redis.call('HSET', meta, 'ended', '1')
  out[#out + 1] = '{"k":"end","d":{}}'
end
redis.call('HSETNX', meta, 'cursor', '0')
redis.call('PEXPIRE', meta, ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
if ended then
  -- An ended chat's messages go after the short retention, never later (not renewed).
  local ttl = redis.call('PTTL', log)
  if ttl == -1 or ttl > tonumber(ARGV[10]) then redis.call('PEXPIRE', log, ARGV[10]) end
else
  redis.call('PEXPIRE', log, ARGV[2])
end
local payload = '[' .. table.concat(out, ',') .. ']'
if #out > 0 then redis.call(ARGV[7], ARGV[3], payload) end
return {payload, held, dropped, ended and 1 or 0}
"""

# KEYS: meta, log. ARGV: after, limit. Returns {floor, {"<index>:<body>", ...}}: the messages
# with index > after and, read with them, the floor below which the log holds nothing.
TRANSCRIPT = """
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
local cursor = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0')
if redis.call('EXISTS', KEYS[2]) == 0 and cursor > floor then floor = cursor end
local rows = redis.call('ZRANGE', KEYS[2], '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0,
                        tonumber(ARGV[2]))
return {floor, rows}
"""

# KEYS: meta, log. Drops the chat's whole log (over the fleet's budget); nothing up to its
# last index is cached any more. Returns how many messages were dropped.
DROP_LOG = """
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 0 then return 0 end
local count = redis.call('ZCARD', KEYS[2])
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
  if tonumber(last[2]) > floor then floor = tonumber(last[2]) end
  redis.call('HSET', KEYS[1], 'bytes', 0, 'floor', floor)
end
return count
"""

# KEYS: meta. ARGV: upto, retention_ms. Returns the previous index-less cursor.
CLAIM_INDEXLESS = """
local previous = tonumber(redis.call('HGET', KEYS[1], 'ixl') or '0')
if tonumber(ARGV[1]) > previous then redis.call('HSET', KEYS[1], 'ixl', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return previous
"""

# KEYS: meta. ARGV: retention_ms, then name, value pairs (empty value deletes the cookie).
SET_COOKIES = """
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], 'c:' .. ARGV[i])
  else
    redis.call('HSET', KEYS[1], 'c:' .. ARGV[i], ARGV[i + 1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

# KEYS: meta. ARGV: retention_ms.
MARK_COMPLETED = """
redis.call('HSET', KEYS[1], 'completed', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: ref. ARGV: ref, ttl_ms. The longest interest wins when several parties care.
NOTE_REF = """
local ttl = tonumber(ARGV[2])
local current = redis.call('PTTL', KEYS[1])
if current > ttl then ttl = current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return 1
"""

# KEYS: interest. ARGV: chat, ttl_ms. Scores are the server's clock, so instance clocks never
# need to agree.
NOTE_INTEREST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: interest. Drops expired members and returns the live ones.
LIVE_INTEREST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')
"""


# -- webhook outbox and push records (hooks) ---------------------------------------------------
# The push scripts touch one chat's keys (its slot). The outbox scripts (`_outbox_redis`)
# touch only the outbox's keys, which share their own hash tag `{outbox}` (one slot), never
# a chat's. Times are the server's clock, so instance clocks never need to agree.

# KEYS: push. ARGV: push token, handle, retention_ms.
PUSH_REGISTER = """
redis.call('HSET', KEYS[1], 'tok', ARGV[1], 'h', ARGV[2])
redis.call('HSETNX', KEYS[1], 'w', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: push, readers, meta. ARGV: retention_ms.
# Returns nil without a record, else {readers, notified, end_notified, cursor, ended, token,
# handle}; with a reader present, notified/end_notified are first raised to what is committed.
PUSH_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local cursor = tonumber(redis.call('HGET', KEYS[3], 'cursor') or '0')
local ended = redis.call('HGET', KEYS[3], 'ended') == '1'
local notified = tonumber(redis.call('HGET', KEYS[1], 'w') or '0')
local end_notified = redis.call('HGET', KEYS[1], 'e') == '1'
local readers = redis.call('EXISTS', KEYS[2]) == 1
if readers then
  if cursor > notified then
    notified = cursor
    redis.call('HSET', KEYS[1], 'w', cursor)
  end
  if ended and not end_notified then
    end_notified = true
    redis.call('HSET', KEYS[1], 'e', '1')
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {readers and 1 or 0, notified, end_notified and 1 or 0, cursor, ended and 1 or 0,
        redis.call('HGET', KEYS[1], 'tok') or '', redis.call('HGET', KEYS[1], 'h') or ''}
"""

# KEYS: push. ARGV: upto, ended '1'|'0', retention_ms. The watermark only ever rises.
PUSH_ADVANCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'w') or '0') then
  redis.call('HSET', KEYS[1], 'w', ARGV[1])
end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'e', '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# The outbox's scripts are in `_outbox_redis.py`, beside its data model.


# -- fleet-wide limits (`_limits_redis.py`) --------------------------------------------------

# KEYS: bucket. ARGV: refill per second, burst. A token bucket on the server's clock; returns
# the seconds to wait as a string ("0" when a token was taken).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at',
  string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""

# KEYS: set (member -> expiry, server ms). ARGV: member, ttl_ms, limit. Drops expired members;
# (re)admits the member until now + ttl when it is one or there is room: 1, else 0.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'GT', expiry, ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

# Holder counts: a hash per counter, field <instance> = that instance's count and
# <instance># = the sequence number of its last write (writes may arrive out of order; an older
# one is ignored). An instance always writes its absolute count, so any write heals drift.
_WRITE_HOLDERS = """
local seq = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. '#') or '-1')
if seq < tonumber(ARGV[2]) then
  if tonumber(ARGV[3]) > 0 then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], ARGV[1] .. '#', ARGV[2])
  else
    redis.call('HDEL', KEYS[1], ARGV[1], ARGV[1] .. '#')
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
"""

# KEYS: counter. ARGV: instance, seq, count, limit (unused), key_ttl_ms.
SET_HOLDERS = _WRITE_HOLDERS + "return 1\n"

# KEYS: counter. ARGV: instance, seq, new count, limit, key_ttl_ms, then dead instances whose
# counts are dropped first. Returns 1 when the new count fits (and is written), else the list
# of the other instances counted (nothing written).
OCCUPY = (
    """
for i = 6, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i], ARGV[i] .. '#') end
local fields = redis.call('HGETALL', KEYS[1])
local total, others = tonumber(ARGV[3]), {}
for i = 1, #fields, 2 do
  local name = fields[i]
  if name ~= ARGV[1] and string.sub(name, -1) ~= '#' then
    total = total + tonumber(fields[i + 1])
    others[#others + 1] = name
  end
end
if total > tonumber(ARGV[4]) then return others end
"""
    + _WRITE_HOLDERS
    + "return 1\n"
)


# -- the fleet's budget of cached transcripts (`_budget.py`) -----------------------------------

# KEYS: held (hash chat -> bytes, and '#total'), expiry (sorted set chat -> when its log
# expires, server ms); both tagged `{transcripts}`. ARGV: budget_bytes, retention_ms, then
# chat, bytes, ttl_ms triples (what commits reported, oldest first). Forgets chats whose logs
# expired, records the reports, and over the budget picks the chats whose logs expire first.
# Returns {total bytes held, {chats whose logs must be dropped}}.
BUDGET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = tonumber(redis.call('HGET', KEYS[1], '#total') or '0')
local function forget(chat)
  total = total - tonumber(redis.call('HGET', KEYS[1], chat) or '0')
  redis.call('HDEL', KEYS[1], chat)
  redis.call('ZREM', KEYS[2], chat)
end
for _, chat in ipairs(redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)) do
  forget(chat)
end
for i = 3, #ARGV, 3 do
  if tonumber(ARGV[i + 1]) > 0 then
    total = total - tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') + tonumber(ARGV[i + 1])
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    -- Reports come in commit order: a thousandth of a ms apart keeps it among equal times.
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[i + 2]) + i / 3000, ARGV[i])
  else
    forget(ARGV[i])
  end
end
local victims = {}
while total > tonumber(ARGV[1]) do
  local first = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #first == 0 then
    total = 0
    break
  end
  forget(first[1])
  victims[#victims + 1] = first[1]
end
redis.call('HSET', KEYS[1], '#total', total)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {total, victims}
"""
