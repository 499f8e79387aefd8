-- One admission tick of one concert, run only by the holder of the concert's admitter lease (the
-- lease is checked here, atomically, so a stale leader can never admit).
--   1. ACTIVE tokens past their time expire and free their slot; so do ACTIVE tokens idle past
--      their deadline in `idle` (admitted, or last hold ended, more than the idle time ago);
--   2. WAITING tokens not seen for the grace period are dropped (their seq goes to `gone`, so
--      positions behind them stay exact) -- except while the concert is sold out: waiting fans
--      were told to poll slowly, and they keep their place for when seats come back;
--   3. up to `admit_max` of the oldest WAITING tokens become ACTIVE, while ACTIVE stays under the
--      cap, unless the concert is sold out (`sold_out` in meta tells status reads and entries);
--   4. `head` (highest seq ever admitted) moves on and `gone` forgets seqs at or below it;
--   5. `rate`, the observed admissions per second over >= 2 s windows, is smoothed for ETAs.
-- Before the concert's opening (ARGV 14 in the future) nobody is admitted, whatever the budget:
-- the fans of the pre-queue get their places only when open.lua shuffles them in.
-- Every WAITING token has seq > head, so a token's position is seq - head - |gone in (head, seq)|.
-- KEYS: 1 waiting zset, 2 active zset, 3 seen zset, 4 gone zset, 5 meta hash, 6 lease, 7 concerts set,
--       8 idle zset (ACTIVE token -> when it loses its slot if it holds nothing),
--       9 pre-queue zset, 10 late zset (fans waiting for the opening's shuffle)
-- ARGV: 1 instance id, 2 now ms, 3 admit_max, 4 cap, 5 active ttl ms, 6 grace ms,
--       7 token hash prefix, 8 user key prefix, 9 record ttl s, 10 concert id,
--       11 sold out (1 or 0), 12 idle ms (0: no idle rule), 13 outage ms (a longer gap since
--       the last tick means nobody could tick: Redis was unreachable, or no instance ran),
--       14 opening ms (0: the queue is open)
-- Returns false when not the leader, else
--   {head, waiting, active, admitted, expired, abandoned, rate, {gone seqs...}, {wait ms of admitted...},
--    idled, sold out (1 or 0), fans waiting for the opening's shuffle}
if redis.call('GET', KEYS[6]) ~= ARGV[1] then
  return false
end
local now = tonumber(ARGV[2])

-- 0. After an outage (no tick for longer than a lease: Redis unreachable, or no instance up),
--    the time without ticks does not count against waiting fans' grace: their polls could not
--    be seen meanwhile. Each `seen` moves on by the gap (never past now), so fans keep their
--    places and their order, and those who really left are still dropped one grace period later.
local last_tick = tonumber(redis.call('HGET', KEYS[5], 'last_tick_ms') or '0')
redis.call('HSET', KEYS[5], 'last_tick_ms', now)
local gap = now - last_tick
if last_tick > 0 and gap > tonumber(ARGV[13]) then
  local seen = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  for i = 1, #seen, 2 do
    redis.call('ZADD', KEYS[3], 'XX', math.min(tonumber(seen[i + 1]) + gap, now), seen[i])
  end
end

local sold_out = ARGV[11] == '1'
local idle_ms = tonumber(ARGV[12])

local function finish(token)
  redis.call('ZREM', KEYS[8], token)
  local record = ARGV[7] .. token
  redis.call('HSET', record, 'status', 'EXPIRED')
  redis.call('EXPIRE', record, ARGV[9])
  local user = redis.call('HGET', record, 'user')
  if user and redis.call('GET', ARGV[8] .. user) == token then
    redis.call('DEL', ARGV[8] .. user)
  end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, token in ipairs(expired) do
  finish(token)
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end

local idled = 0
for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now)) do
  if redis.call('ZREM', KEYS[2], token) == 1 then
    idled = idled + 1
  end
  finish(token)
end

local was_sold_out = redis.call('HGET', KEYS[5], 'sold_out') == '1'
if sold_out ~= was_sold_out then
  redis.call('HSET', KEYS[5], 'sold_out', sold_out and '1' or '0')
  if not sold_out then
    -- Reopened: every waiting fan starts a fresh grace period from now.
    for _, token in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
      redis.call('ZADD', KEYS[3], 'XX', now, token)
    end
  end
end

local abandoned = 0
if not sold_out then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[6]))
  for _, token in ipairs(stale) do
    local seq = redis.call('ZSCORE', KEYS[1], token)
    if seq then
      redis.call('ZREM', KEYS[1], token)
      redis.call('ZADD', KEYS[4], seq, seq)
      finish(token)
      abandoned = abandoned + 1
    end
    redis.call('ZREM', KEYS[3], token)
  end
end

local head = tonumber(redis.call('HGET', KEYS[5], 'head') or '0')
local slots = math.min(tonumber(ARGV[3]), tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[2]))
local opens = tonumber(ARGV[14])
if opens > now then
  redis.call('HSET', KEYS[5], 'opens_ms', opens)
end
if sold_out or opens > now then
  slots = 0
end
local waits = {}
if slots > 0 then
  local batch = redis.call('ZPOPMIN', KEYS[1], slots)
  local active_until = now + tonumber(ARGV[5])
  for i = 1, #batch, 2 do
    local token, seq = batch[i], tonumber(batch[i + 1])
    local record = ARGV[7] .. token
    redis.call('ZADD', KEYS[2], active_until, token)
    if idle_ms > 0 then
      redis.call('ZADD', KEYS[8], now + idle_ms, token)
    end
    redis.call('ZREM', KEYS[3], token)
    redis.call('HSET', record, 'status', 'ACTIVE', 'active_until_ms', active_until, 'admitted_ms', now)
    redis.call('EXPIRE', record, ARGV[9])
    local entered = tonumber(redis.call('HGET', record, 'entered_ms') or now)
    waits[#waits + 1] = now - entered
    if seq > head then
      head = seq
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', head)

-- Admissions per second, measured over windows of at least 2 s (single ticks are too jittery to
-- divide by) and smoothed; only while someone is waiting and the concert is on sale, so an idle or
-- sold-out queue keeps its last rate.
local meta = redis.call('HMGET', KEYS[5], 'rate', 'window_start_ms', 'window_admitted')
local rate = tonumber(meta[1] or '0')
local window_start = tonumber(meta[2] or '0')
local window_admitted = tonumber(meta[3] or '0') + #waits
local waiting = redis.call('ZCARD', KEYS[1])
if (waiting == 0 and #waits == 0) or sold_out then
  window_start, window_admitted = now, 0
elseif window_start == 0 then
  window_start = now
elseif now - window_start >= 2000 then
  local measured = window_admitted * 1000 / (now - window_start)
  if rate > 0 then
    rate = 0.5 * rate + 0.5 * measured
  else
    rate = measured
  end
  window_start, window_admitted = now, 0
end
redis.call('HSET', KEYS[5], 'window_start_ms', window_start, 'window_admitted', window_admitted)
redis.call('HSET', KEYS[5], 'head', head, 'rate', tostring(rate), 'last_tick_ms', now)

local active = redis.call('ZCARD', KEYS[2])
local prequeued = redis.call('ZCARD', KEYS[9]) + redis.call('ZCARD', KEYS[10])
if waiting == 0 and active == 0 and prequeued == 0 then
  -- Nothing left to admit or expire: stop ticking this concert until someone enters again
  -- (enter.lua adds it back; both scripts are atomic, so no entrant is missed).
  redis.call('SREM', KEYS[7], ARGV[10])
end
local gone = redis.call('ZRANGE', KEYS[4], 0, -1)
return {head, waiting, active, #waits, #expired, abandoned, tostring(rate), gone, waits, idled,
        sold_out and 1 or 0, prequeued}
