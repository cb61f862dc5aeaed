-- Reads a batch of customers in one call: each one's value (watermarks, a
-- newline, the state) and the eventIds of its dedup window with their times.
-- KEYS: per customer, its state key and its dedup zset. ARGV[1]: the window's start (ms).
local out = {}
for k = 1, #KEYS, 2 do
  out[#out + 1] = redis.call('GET', KEYS[k])
  out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[k + 1], ARGV[1], '+inf', 'WITHSCORES')
end
return out
