-- The API's lookup in one round trip: the latest claimant across identifier keys
-- (highest claim time; ties: the higher customerId), and its stored value.
-- It reads a customer key it is not given (its name depends on what it finds):
-- fine on one Redis server; on Redis Cluster use latest_claimant, then GET.
-- KEYS: identifier zsets. ARGV[1]: the customer keys' prefix up to the id ('<p>:<g>:c:{<org>:').
local best, best_score
for k = 1, #KEYS do
  local top = redis.call('ZREVRANGE', KEYS[k], 0, 0, 'WITHSCORES')
  if top[1] then
    local score = tonumber(top[2])
    if not best or score > best_score or (score == best_score and tonumber(top[1]) > tonumber(best)) then
      best, best_score = top[1], score
    end
  end
end
if not best then return false end
return {best, redis.call('GET', ARGV[1] .. best .. '}')}
