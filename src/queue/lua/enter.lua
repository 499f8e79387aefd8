-- Enter the waiting queue of one concert, idempotently: a user who already holds a PREQUEUE,
-- WAITING or ACTIVE token gets it back (and keeps their place); otherwise a new token is appended
-- with the next sequence number, which fixes their place in line (strict FIFO, no wall-clock ties).
-- Answers like status.lua, with the token first, so entering is one round trip. A sold-out concert
-- gives no new token (the answer's token is empty, its status SOLD_OUT); a fan already in line
-- keeps theirs.
-- Before the opening (ARGV 7 in the future) the token goes to the pre-queue instead: no sequence
-- number yet, status PREQUEUE, kept (not dropped for silence) until the opening shuffles it into
-- the line (open.lua). A fan who comes after the opening time while that shuffle is still owed
-- (the pre-queue is not empty) waits in `late`, to be placed behind the shuffled ones in arrival
-- order.
-- KEYS: 1 user->token, 2 sequence, 3 waiting zset (token->seq), 4 seen zset (token->ms), 5 concerts set,
--       6 meta hash, 7 gone zset, 8 pre-queue zset (token->arrival), 9 late zset (token->arrival),
--       10 arrival counter
-- ARGV: 1 new token, 2 token hash prefix, 3 user id, 4 now ms, 5 record ttl s, 6 concert id,
--       7 opening ms (0: the queue is open)
-- Returns {token, status, user, seq, head, gone_ahead, active_until_ms, rate, sold out (1 or 0),
--          opening ms (0 unless PREQUEUE)}
local function answer(token)
  local record = redis.call('HMGET', ARGV[2] .. token, 'status', 'user', 'seq', 'active_until_ms')
  local meta = redis.call('HMGET', KEYS[6], 'head', 'rate', 'sold_out', 'opens_ms')
  local head = tonumber(meta[1] or '0')
  local seq = tonumber(record[3] or '0')
  local gone_ahead = 0
  if record[1] == 'WAITING' then
    gone_ahead = redis.call('ZCOUNT', KEYS[7], '(' .. head, '(' .. seq)
  end
  return {token, record[1], record[2], seq, head, gone_ahead, record[4] or '0', meta[2] or '0',
          meta[3] == '1' and 1 or 0, meta[4] or '0'}
end

local existing = redis.call('GET', KEYS[1])
if existing then
  local status = redis.call('HGET', ARGV[2] .. existing, 'status')
  if status == 'WAITING' then
    redis.call('ZADD', KEYS[4], ARGV[4], existing)
    return answer(existing)
  elseif status == 'ACTIVE' or status == 'PREQUEUE' then
    return answer(existing)
  end
end
if redis.call('HGET', KEYS[6], 'sold_out') == '1' then
  return {'', 'SOLD_OUT', 0, 0, 0, 0, 0, '0', 1, '0'}
end
local now = tonumber(ARGV[4])
local opens = tonumber(ARGV[7])
local token = ARGV[1]
local record = ARGV[2] .. token
local ttl = tonumber(ARGV[5])
local before_opening = opens > now
if before_opening or redis.call('ZCARD', KEYS[8]) > 0 then
  -- Kept at least until the opening, plus the usual record time.
  if before_opening then
    ttl = ttl + math.ceil((opens - now) / 1000)
    redis.call('HSET', KEYS[6], 'opens_ms', opens)
  end
  local arrival = redis.call('INCR', KEYS[10])
  redis.call('HSET', record, 'user', ARGV[3], 'status', 'PREQUEUE', 'entered_ms', ARGV[4])
  redis.call('ZADD', before_opening and KEYS[8] or KEYS[9], arrival, token)
else
  local seq = redis.call('INCR', KEYS[2])
  redis.call('HSET', record, 'user', ARGV[3], 'seq', seq, 'status', 'WAITING', 'entered_ms', ARGV[4])
  redis.call('ZADD', KEYS[3], seq, token)
  redis.call('ZADD', KEYS[4], ARGV[4], token)
end
redis.call('EXPIRE', record, ttl)
redis.call('SET', KEYS[1], token, 'EX', ttl)
redis.call('SADD', KEYS[5], ARGV[6])
return answer(token)
