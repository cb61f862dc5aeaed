-- Reads a batch of customers in one call: their state hash (state JSON and
-- watermarks) and which of the batch's eventIds their dedup set holds.
-- KEYS: per customer, its state hash and its dedup zset.
-- ARGV: per customer, m, then m eventIds.
local out, a = {}, 1
for k = 1, #KEYS, 2 do
  local m = tonumber(ARGV[a])
  out[#out + 1] = redis.call('HGETALL', KEYS[k])
  if m > 0 then
    out[#out + 1] = redis.call('ZMSCORE', KEYS[k + 1], unpack(ARGV, a + 1, a + m))
  else
    out[#out + 1] = {}
  end
  a = a + 1 + m
end
return out
