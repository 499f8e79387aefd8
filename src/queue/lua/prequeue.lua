-- The pre-queue of one concert, in arrival order, for the opening's shuffle.
-- KEYS: 1 pre-queue zset (token->arrival)
-- ARGV: 1 token hash prefix
-- Returns {token, user id, token, user id, ...}; a token whose record is gone is left out.
local out = {}
for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local user = redis.call('HGET', ARGV[1] .. token, 'user')
  if user then
    out[#out + 1] = token
    out[#out + 1] = user
  end
end
return out
