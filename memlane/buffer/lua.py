"""Every Lua script memlane runs in Redis, in one place. Each runs atomically inside Redis.

The turn buffer (:mod:`.turns`): ``PUSH``, ``COMMIT``, ``DEAD_LETTER``. Leases, tombstones and
guarded writes (:mod:`.lease`): ``RENEW``, ``GUARD``, ``SETTLE_WRITE``, ``FORGET``,
``RELEASE``. Attempt counters (:mod:`.attempts`): ``ATTEMPT_START``, ``ATTEMPT_FORGIVE``. The
nightly fan-out (:mod:`.nightly`): ``NIGHT_START``. Unreflected counts (:mod:`.unreflected`):
``SETTLE_UNREFLECTED``. The API keys of the HTTP service (``service/apikeys.py``):
``AUTHENTICATE`` (look a key up and take a token from its bucket) and ``AUTHENTICATE_PUSH``
(the same, then ``PUSH``, in one round trip). Provider limits
(:mod:`.provider_limits`): ``LIMIT_ACQUIRE``, ``LIMIT_SETTLE``.
"""

from __future__ import annotations

# -- the turn buffer -----------------------------------------------------------------------

# KEYS: stream, turn_ids, pending, last_push, users
# ARGV: user_id, now_ms, turn_ids_ttl_s, then (turn_id, payload) pairs.
# Returns one flag per turn: 1 = buffered, 0 = already seen (a no-op re-push).
PUSH = """
local added = {}
local n = 0
for i = 4, #ARGV, 2 do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[1], '*', 'turn', ARGV[i + 1])
    n = n + 1
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
if n > 0 then
  redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[5], ARGV[1])
end
return added
"""

# Shared tail: re-score the user in the pending index by their oldest remaining turn.
_RESCORE = """
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  local ms = string.match(first[1][1], '^(%d+)')
  redis.call('ZADD', KEYS[2], ms, ARGV[1])
end
"""

# KEYS: stream, pending, watermark, lease
# ARGV: user_id, token, last_entry_id, then the entry ids to remove.
# Returns -1 when the lease is no longer ours (nothing changed), else the number removed.
COMMIT = (
    """
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return -1 end
local removed = 0
for i = 4, #ARGV do removed = removed + redis.call('XDEL', KEYS[1], ARGV[i]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
"""
    + _RESCORE
    + "return removed\n"
)

# KEYS: stream, pending, dead, lease
# ARGV: user_id, token, batch_id, dead_letter_json, then the entry ids to park.
DEAD_LETTER = (
    """
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
local removed = 0
for i = 5, #ARGV do removed = removed + redis.call('XDEL', KEYS[1], ARGV[i]) end
"""
    + _RESCORE
    + "return removed\n"
)

# -- leases, tombstones and guarded writes --------------------------------------------------

# Shared head: a token granted before the user's last forget (KEYS[2], the tombstone, holds the
# forget's own token) is dead.
_FORGOTTEN = """
local tomb = redis.call('GET', KEYS[2])
if tomb and tonumber(string.match(tomb, '^%d+')) > tonumber(ARGV[1]) then return -2 end
"""

# Shared: extend our lease (KEYS[1]) to ARGV[2] ms, or retake it if it lapsed; 0 if another
# token holds it.
_HOLD = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  return 0
end
"""

# KEYS: lease, tombstone. ARGV: token, ttl_ms.
# Returns 1 (held), 0 (another token holds it) or -2 (the user was forgotten after our grant).
RENEW = _FORGOTTEN + _HOLD + "return 1\n"

# KEYS: lease, tombstone, writes. ARGV: token, ttl_ms, now_ms, intent_ttl_ms, ids_json.
# RENEW, then record the store write we are about to make (pruning intents that ended long ago),
# all in one step: a forget that comes after this sees the write and can sweep what it leaves.
GUARD = (
    _FORGOTTEN
    + _HOLD
    + """
local oldest = tonumber(ARGV[3]) - tonumber(ARGV[4])
local intents = redis.call('HGETALL', KEYS[3])
for i = 1, #intents, 2 do
  if tonumber(string.match(intents[i + 1], '^%d+')) < oldest then
    redis.call('HDEL', KEYS[3], intents[i])
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3] .. ' ' .. ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
"""
)

# KEYS: tombstone, writes. ARGV: token.
# After a guarded write: -2 (and the intent kept) if the user was forgotten meanwhile, else the
# intent is dropped and 1 returned.
SETTLE_WRITE = """
local tomb = redis.call('GET', KEYS[1])
if tomb and tonumber(string.match(tomb, '^%d+')) > tonumber(ARGV[1]) then return -2 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# KEYS: lease, tombstone. ARGV: token, lease_ttl_ms, tombstone_ttl_s, now_ms.
# forget_user: the tombstone (never moved back by a slower, older forget) and the lease, taken
# whoever holds it: every earlier token is dead from here on.
FORGET = """
local tomb = redis.call('GET', KEYS[2])
if not tomb or tonumber(string.match(tomb, '^%d+')) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. ARGV[4], 'EX', ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lease. ARGV: token. Delete the lease only if it is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# -- attempt counters ----------------------------------------------------------------------

# The hash value is "<count>|<holder>"; a bare count (older versions) has no holder.

_PARSE_ATTEMPTS = """
local function parse(v)
  if not v then return 0, '' end
  local n, holder = string.match(v, '^(%-?%d+)|?(.*)$')
  return tonumber(n) or 0, holder or ''
end
"""
# KEYS: attempts hash, stopped-workers zset. ARGV: batch id, holder of this attempt.
ATTEMPT_START = (
    _PARSE_ATTEMPTS
    + """
local n, last = parse(redis.call('HGET', KEYS[1], ARGV[1]))
if last ~= '' and redis.call('ZSCORE', KEYS[2], last) then
  n = n - 1  -- the last attempt's worker was stopped on purpose mid-batch: not the batch's fault
end
n = math.max(n, 0) + 1
redis.call('HSET', KEYS[1], ARGV[1], n .. '|' .. ARGV[2])
return n
"""
)
# KEYS: attempts hash. ARGV: batch id. Takes one attempt back and ends it (no holder).
ATTEMPT_FORGIVE = (
    _PARSE_ATTEMPTS
    + """
local n = parse(redis.call('HGET', KEYS[1], ARGV[1])) - 1
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], n .. '|')
end
return n
"""
)

# -- the nightly fan-out ------------------------------------------------------------------

# KEYS: marker, snapshot list. ARGV: ttl, users... Claim and snapshot together or not at all.
NIGHT_START = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('DEL', KEYS[2])
if #ARGV > 1 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 2))
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return 1
"""

# -- unreflected counts ---------------------------------------------------------------------

# Take off what reflection covered; drop the user when nothing is left, and never leave the
# count below the observations the run knowingly left for later.
SETTLE_UNREFLECTED = """
local v = tonumber(redis.call('ZINCRBY', KEYS[1], -tonumber(ARGV[2]), ARGV[1]))
local remaining = tonumber(ARGV[3])
if remaining <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if v < remaining then
  redis.call('ZADD', KEYS[1], remaining, ARGV[1])
  return remaining
end
return v
"""


# -- API keys (service/apikeys.py) ---------------------------------------------------------

# KEYS[1] = the key's hash (by sha256). ARGV: none. Returns {0} for an unknown key,
# {1, id, tenant} when a token was taken, {2, id, tenant, wait_ms} when the bucket is empty.
AUTHENTICATE = """
local f = redis.call('HMGET', KEYS[1], 'id', 'tenant', 'rate', 'burst', 'tokens', 'ts')
if not f[1] then return {0} end
local rate = tonumber(f[3])
local burst = tonumber(f[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = tonumber(f[5]) or burst
local ts = tonumber(f[6]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
if tokens < 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
  return {2, f[1], f[2], tostring(math.ceil((1 - tokens) * 1000 / rate))}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', tostring(now))
return {1, f[1], f[2]}
"""

# The HTTP push in one round trip: AUTHENTICATE, then PUSH only if a token was taken and the
# key belongs to the tenant the service computed the user's keys for.
# KEYS[1] = the key's hash, KEYS[2..6] = PUSH's keys. ARGV[1] = the expected tenant ('' for an
# admin key), ARGV[2..] = PUSH's arguments. Returns 1 when the turns were pushed (the key is the
# expected tenant's: its id is fixed for the record's life), AUTHENTICATE's answer when it
# refused ({0} or {2, ...}), or {3, id, tenant} when the tenant differs: a token was taken,
# nothing was pushed. A plain 1 is the cheapest reply to parse on the hot path.
AUTHENTICATE_PUSH = (
    "local function authenticate(KEYS)\n"
    + AUTHENTICATE
    + "end\nlocal function push(KEYS, ARGV)\n"
    + PUSH
    + """end
local a = authenticate({KEYS[1]})
if a[1] ~= 1 then return a end
if a[3] ~= ARGV[1] then return {3, a[2], a[3]} end
local args = {}
for i = 2, #ARGV do args[i - 1] = ARGV[i] end
push({KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}, args)
return 1
"""
)

# -- provider limits (rpm / tpm) -----------------------------------------------------------

# A sliding window per provider key: KEYS[1] a zset grant id -> admission time (ms, Redis's
# clock, so every worker counts on one clock), KEYS[2] a hash grant id -> reserved tokens, plus
# '_sum' (their total). Entries older than the window are dropped first.
_LIMIT_EXPIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[5])
local cutoff = now - window
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #old > 0 then
  local freed = 0
  for i = 1, #old do
    freed = freed + (tonumber(redis.call('HGET', KEYS[2], old[i])) or 0)
    redis.call('HDEL', KEYS[2], old[i])
  end
  -- never '-0' (Lua's negative zero), which HINCRBY refuses
  if freed > 0 then redis.call('HINCRBY', KEYS[2], '_sum', 0 - freed) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end
"""

# KEYS: window zset, tokens hash
# ARGV: grant_id, tokens, max_requests (0 = none), max_tokens (0 = none), window_ms
# Returns {1, 0} when admitted (the grant is recorded), else {0, ms until a place frees up}.
LIMIT_ACQUIRE = (
    _LIMIT_EXPIRE
    + """
local tokens = tonumber(ARGV[2])
local max_req = tonumber(ARGV[3])
local max_tok = tonumber(ARGV[4])
local wait = 0
if max_req > 0 then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= max_req then
    local e = redis.call('ZRANGE', KEYS[1], n - max_req, n - max_req, 'WITHSCORES')
    wait = math.max(wait, tonumber(e[2]) + window - now + 1)
  end
end
if max_tok > 0 then
  local sum = tonumber(redis.call('HGET', KEYS[2], '_sum') or '0')
  if sum + tokens > max_tok then
    local need = sum + tokens - max_tok
    local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    local freed = 0
    local until_free = window
    for i = 1, #entries, 2 do
      freed = freed + (tonumber(redis.call('HGET', KEYS[2], entries[i])) or 0)
      if freed >= need then
        until_free = tonumber(entries[i + 1]) + window - now + 1
        break
      end
    end
    wait = math.max(wait, until_free)
  end
end
if wait > 0 then return {0, wait} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
if tokens > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], tokens)
  redis.call('HINCRBY', KEYS[2], '_sum', tokens)
end
redis.call('PEXPIRE', KEYS[1], window * 2)
redis.call('PEXPIRE', KEYS[2], window * 2)
return {1, 0}
"""
)

# KEYS: window zset, tokens hash
# ARGV: grant_id, tokens really spent
# Returns 1 when corrected, 0 when the grant already left the window (nothing to correct).
LIMIT_SETTLE = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], '_sum', tonumber(ARGV[2]) - tonumber(old))
return 1
"""
