-- End a token early (its purchase completed, or its hold was lost): frees its ACTIVE slot.
-- KEYS: 1 token hash, 2 active zset, 3 waiting zset, 4 seen zset, 5 gone zset, 6 user key prefix,
--       7 idle zset, 8 pre-queue zset, 9 late zset
-- ARGV: 1 token, 2 record ttl s
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'EXPIRED' then
  return 0
end
if status == 'WAITING' then
  local seq = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if seq then
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('ZADD', KEYS[5], seq, seq)
  end
  redis.call('ZREM', KEYS[4], ARGV[1])
elseif status == 'PREQUEUE' then
  redis.call('ZREM', KEYS[8], ARGV[1])
  redis.call('ZREM', KEYS[9], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'EXPIRED')
redis.call('EXPIRE', KEYS[1], ARGV[2])
local user = redis.call('HGET', KEYS[1], 'user')
if user and redis.call('GET', KEYS[6] .. user) == ARGV[1] then
  redis.call('DEL', KEYS[6] .. user)
end
return 1
