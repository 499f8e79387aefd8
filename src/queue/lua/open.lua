-- The opening of one concert's queue: the pre-queue, in the shuffled order the admitter computed
-- (ARGV 6...), takes the next sequence numbers, then whoever is left in the pre-queue (entered
-- after the admitter read it) and in `late` (entered after the opening time, before this ran), in
-- arrival order. Each becomes WAITING, seen now (a fresh grace period). Run only by the holder of
-- the concert's lease; once the pre-queue is empty there is nothing left to open, so a second
-- run changes nothing (exactly one shuffle).
-- KEYS: 1 pre-queue zset, 2 late zset, 3 waiting zset, 4 seen zset, 5 sequence, 6 meta hash, 7 lease
-- ARGV: 1 instance id, 2 now ms, 3 token hash prefix, 4 record ttl s, 5 seed, 6... shuffled tokens
-- Returns false when not the leader, else {placed from the shuffle, placed after it}.
if redis.call('GET', KEYS[7]) ~= ARGV[1] then
  return false
end
local now = ARGV[2]

local function place(token)
  local record = ARGV[3] .. token
  if redis.call('HGET', record, 'status') ~= 'PREQUEUE' then
    return 0
  end
  local seq = redis.call('INCR', KEYS[5])
  redis.call('HSET', record, 'status', 'WAITING', 'seq', seq)
  redis.call('EXPIRE', record, ARGV[4])
  redis.call('ZADD', KEYS[3], seq, token)
  redis.call('ZADD', KEYS[4], now, token)
  return 1
end

local shuffled = 0
for i = 6, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    shuffled = shuffled + place(ARGV[i])
  end
end
local after = 0
for _, key in ipairs({KEYS[1], KEYS[2]}) do
  for _, token in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    after = after + place(token)
  end
  redis.call('DEL', key)
end
redis.call('HSET', KEYS[6], 'opened_ms', now, 'shuffle_seed', ARGV[5])
redis.call('HDEL', KEYS[6], 'opens_ms')
return {shuffled, after}
