-- Take or renew the admitter lease of one concert. Returns 1 when this instance holds it.
-- KEYS: 1 lease   ARGV: 1 instance id, 2 lease ms
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
