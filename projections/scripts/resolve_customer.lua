-- The API's lookup in one round trip: the latest claimant across identifier keys
-- (the highest claim time; ties: the higher customerId), and its stored value.
-- It reads a customer key it is not given (its name depends on what it finds):
-- one Redis server only; on a cluster the Store asks in two round trips (latest_claimant).
-- KEYS: index hashes, then, for a card number, the org's card hash.
-- ARGV[1]: the customer keys' prefix up to the id ('<p>:<g>:c:{<org>:'); ARGV[2]: 1 when the last key
-- is a card hash (its holders claim too; a holder whose card is DELETED (`id:D`) is not a claimant
-- through any key), else 0; then per key the field (`customerId:claimTime,...`).
local best, best_score
local deleted = {}
local indexes = #KEYS - tonumber(ARGV[2])
if indexes < #KEYS then
  for id in string.gmatch(redis.call('HGET', KEYS[#KEYS], ARGV[#KEYS + 2]) or '', '(%d+):D') do
    deleted[id] = true
  end
end
for k = 1, #KEYS do
  for id, at in string.gmatch(redis.call('HGET', KEYS[k], ARGV[k + 2]) or '', '(%d+):(%-?%d+)') do
    local score = tonumber(at)
    if not deleted[id] and (not best or score > best_score or (score == best_score and tonumber(id) > tonumber(best))) then
      best, best_score = id, score
    end
  end
end
if not best then return false end
return {best, redis.call('GET', ARGV[1] .. best .. '}')}
