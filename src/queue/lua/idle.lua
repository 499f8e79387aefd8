-- Moves the idle deadline of a user's ACTIVE token: after a hold, to when the hold ends plus the
-- idle time (only later, never earlier: `GT`); after a cancellation, to now plus the idle time.
-- A fan without an ACTIVE token in this concert is left alone.
-- KEYS: 1 user -> token key, 2 active zset, 3 idle zset
-- ARGV: 1 deadline ms, 2 'later' (only move it later) or 'set'
-- Returns 1 when a deadline moved, else 0.
local token = redis.call('GET', KEYS[1])
if not token or not redis.call('ZSCORE', KEYS[2], token) then
  return 0
end
if ARGV[2] == 'later' then
  return redis.call('ZADD', KEYS[3], 'XX', 'GT', 'CH', ARGV[1], token)
end
return redis.call('ZADD', KEYS[3], 'XX', 'CH', ARGV[1], token)
