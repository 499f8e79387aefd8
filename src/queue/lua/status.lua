-- Read one token's place in line, and count the read as a sign of life (a WAITING token whose
-- holder stops asking is dropped after the grace period).
-- KEYS: 1 token hash, 2 meta hash, 3 gone zset (seqs that left the line early), 4 seen zset
-- ARGV: 1 token, 2 now ms
-- Returns {status, user, seq, head, gone_ahead, active_until_ms, rate, sold out (1 or 0),
-- opening ms (of a pre-queue)} or false when unknown.
local record = redis.call('HMGET', KEYS[1], 'status', 'user', 'seq', 'active_until_ms')
if not record[1] then
  return false
end
local meta = redis.call('HMGET', KEYS[2], 'head', 'rate', 'sold_out', 'opens_ms')
local head = tonumber(meta[1] or '0')
local seq = tonumber(record[3] or '0')
local gone_ahead = 0
if record[1] == 'WAITING' then
  redis.call('ZADD', KEYS[4], 'XX', ARGV[2], ARGV[1])
  gone_ahead = redis.call('ZCOUNT', KEYS[3], '(' .. head, '(' .. seq)
end
return {record[1], record[2], seq, head, gone_ahead, record[4] or '0', meta[2] or '0',
        meta[3] == '1' and 1 or 0, meta[4] or '0'}
