-- Customers claim identifiers: each claimant becomes the latest. Claims are
-- applied in log order within a partition, so a later claim must outrank every
-- earlier one even when its occurredAt is not later (clock skew, equal
-- timestamps); across partitions, which have no common order, occurredAt decides.
-- KEYS: identifier zsets, in log order (a key may come twice).
-- ARGV: per key, customerId and occurredAt (ms).
for k = 1, #KEYS do
  local member, score = ARGV[2 * k - 1], tonumber(ARGV[2 * k])
  local top = redis.call('ZREVRANGE', KEYS[k], 0, 0, 'WITHSCORES')
  if top[1] and tonumber(top[2]) >= score then
    score = tonumber(top[2])
    if top[1] ~= member then score = score + 1 end
  end
  redis.call('ZADD', KEYS[k], score, member)
end
return #KEYS
