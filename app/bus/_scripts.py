"""Lua scripts of the Redis bus: each one is a single atomic step on the server.

Every script touches the keys of ONE chat only (all hash-tagged `{chat}`, one Cluster slot),
except the interest scripts, which touch only the global interest set, and the idempotency
scripts, which touch one idempotency key (tagged `{idem:<key>}`). User data (message
bodies, state JSON) is passed as opaque strings and spliced into the event JSON by
concatenation, never decoded by Lua: cjson would round numbers to 14 digits.
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
#       then index, body_json pairs in ascending index order.
# Returns the published events as a JSON list, or nil when the fence no longer holds the lease.
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local meta, log = KEYS[2], KEYS[3]
local prev = redis.call('HGET', meta, 'cursor') or '0'
local cursor = tonumber(prev)
local out = {}
for i = 7, #ARGV, 2 do
  local index = tonumber(ARGV[i])
  if index > cursor then
    redis.call('ZADD', log, index, ARGV[i] .. ':' .. ARGV[i + 1])
    out[#out + 1] =
      '{"k":"message","i":' .. ARGV[i] .. ',"p":' .. prev .. ',"d":' .. ARGV[i + 1] .. '}'
    cursor = index
    prev = ARGV[i]
  end
end
if #out > 0 then redis.call('HSET', meta, 'cursor', prev) end
if ARGV[4] ~= '' and redis.call('HGET', meta, 'state') ~= ARGV[4] then
  redis.call('HSET', meta, 'state', ARGV[4])
  out[#out + 1] = '{"k":"state","d":' .. ARGV[4] .. '}'
end
if ARGV[5] ~= '' and (redis.call('HGET', meta, 'status') or 'ok') ~= ARGV[5] then
  redis.call('HSET', meta, 'status', ARGV[5])
  out[#out + 1] = '{"k":"status","d":{"upstream":"' .. ARGV[5] .. '"}}'
end
if ARGV[6] == '1' and redis.call('HGET', meta, 'ended') ~= '1' then
  redis.call('HSET', meta, 'ended', '1')
  out[#out + 1] = '{"k":"end","d":{}}'
end
redis.call('HSETNX', meta, 'cursor', '0')
for k = 2, 4 do redis.call('PEXPIRE', KEYS[k], ARGV[2]) end
local payload = '[' .. table.concat(out, ',') .. ']'
if #out > 0 then redis.call('PUBLISH', ARGV[3], payload) end
return payload
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


# -- Idempotency-Key: each key under its own hash tag, one key per script --------------------

# KEYS: slot. ARGV: fingerprint, token, in_flight_ms.
# Returns {'new'}, {'mismatch'}, {'in_flight'} or {'done', answer}.
IDEMPOTENCY_BEGIN = """
local fp = redis.call('HGET', KEYS[1], 'fp')
if not fp then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
if fp ~= ARGV[1] then return {'mismatch'} end
local answer = redis.call('HGET', KEYS[1], 'answer')
if answer then return {'done', answer} end
return {'in_flight'}
"""

# KEYS: slot. ARGV: token, answer, keep_ms. Returns 1 when stored.
IDEMPOTENCY_FINISH = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'answer', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: slot. ARGV: token.
IDEMPOTENCY_ABANDON = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
