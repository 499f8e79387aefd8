-- Enter the waiting queue of one concert, idempotently: a user who already holds a WAITING or
-- ACTIVE token gets it back (and keeps their place); otherwise a new token is appended with the
-- next sequence number, which fixes their place in line (strict FIFO, no wall-clock ties).
-- KEYS: 1 user->token, 2 sequence, 3 waiting zset (token->seq), 4 seen zset (token->ms), 5 concerts set
-- ARGV: 1 new token, 2 token hash prefix, 3 user id, 4 now ms, 5 record ttl s, 6 concert id
local existing = redis.call('GET', KEYS[1])
if existing then
  local status = redis.call('HGET', ARGV[2] .. existing, 'status')
  if status == 'WAITING' then
    redis.call('ZADD', KEYS[4], ARGV[4], existing)
    return existing
  elseif status == 'ACTIVE' then
    return existing
  end
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
return token
