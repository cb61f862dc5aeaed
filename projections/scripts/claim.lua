-- A customer claims an identifier: it becomes the latest claimant. Claims are
-- applied in log order within a partition, so a later claim must outrank every
-- earlier one even when its occurredAt is not later (clock skew, equal
-- timestamps); across partitions, which have no common order, occurredAt decides.
-- KEYS[1]: the identifier's zset. ARGV: customerId, occurredAt (ms).
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local score = tonumber(ARGV[2])
if top[1] and tonumber(top[2]) >= score then
  score = tonumber(top[2])
  if top[1] ~= ARGV[1] then score = score + 1 end
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
return score
