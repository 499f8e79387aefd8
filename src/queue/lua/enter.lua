-- Enter the waiting queue of one concert, idempotently: a user who already holds a WAITING or
-- ACTIVE token gets it back (and keeps their place); otherwise a new token is appended with the
-- next sequence number, which fixes their place in line (strict FIFO, no wall-clock ties).
-- Answers like status.lua, with the token first, so entering is one round trip. A sold-out concert
-- gives no new token (the answer's token is empty, its status SOLD_OUT); a fan already in line
-- keeps theirs.
-- KEYS: 1 user->token, 2 sequence, 3 waiting zset (token->seq), 4 seen zset (token->ms), 5 concerts set,
--       6 meta hash, 7 gone zset
-- ARGV: 1 new token, 2 token hash prefix, 3 user id, 4 now ms, 5 record ttl s, 6 concert id
-- Returns {token, status, user, seq, head, gone_ahead, active_until_ms, rate, sold out (1 or 0)}
local function answer(token)
  local record = redis.call('HMGET', ARGV[2] .. token, 'status', 'user', 'seq', 'active_until_ms')
  local meta = redis.call('HMGET', KEYS[6], 'head', 'rate', 'sold_out')
  local head = tonumber(meta[1] or '0')
  local seq = tonumber(record[3])
  local gone_ahead = 0
  if record[1] == 'WAITING' then
    gone_ahead = redis.call('ZCOUNT', KEYS[7], '(' .. head, '(' .. seq)
  end
  return {token, record[1], record[2], seq, head, gone_ahead, record[4] or '0', meta[2] or '0',
          meta[3] == '1' and 1 or 0}
end

local existing = redis.call('GET', KEYS[1])
if existing then
  local status = redis.call('HGET', ARGV[2] .. existing, 'status')
  if status == 'WAITING' then
    redis.call('ZADD', KEYS[4], ARGV[4], existing)
    return answer(existing)
  elseif status == 'ACTIVE' then
    return answer(existing)
  end
end
if redis.call('HGET', KEYS[6], 'sold_out') == '1' then
  return {'', 'SOLD_OUT', 0, 0, 0, 0, 0, '0', 1}
end
local seq = redis.call('INCR', KEYS[2])
local token = ARGV[1]
local record = ARGV[2] .. token
redis.call('HSET', record, 'user', ARGV[3], 'seq', seq, 'status', 'WAITING', 'entered_ms', ARGV[4])
redis.call('EXPIRE', record, ARGV[5])
redis.call('SET', KEYS[1], token, 'EX', ARGV[5])
redis.call('ZADD', KEYS[3], seq, token)
redis.call('ZADD', KEYS[4], ARGV[4], token)
redis.call('SADD', KEYS[5], ARGV[6])
return answer(token)
