-- The API's lookup in one round trip: the latest claimant across identifier keys
-- (the highest claim time; ties: the higher customerId), and its stored value.
-- It reads a customer key it is not given (its name depends on what it finds):
-- one Redis server only; on a cluster the Store asks in two round trips (latest_claimant).
-- KEYS: index hashes. ARGV[1]: the customer keys' prefix up to the id
-- ('<p>:<g>:c:{<org>:'), then per key the identifier (its field: `customerId:claimTime,...`).
local best, best_score
for k = 1, #KEYS do
  for id, at in string.gmatch(redis.call('HGET', KEYS[k], ARGV[k + 1]) or '', '(%d+):(%-?%d+)') do
    local score = tonumber(at)
    if not best or score > best_score or (score == best_score and tonumber(id) > tonumber(best)) then
      best, best_score = id, score
    end
  end
end
if not best then return false end
return {best, redis.call('GET', ARGV[1] .. best .. '}')}
