-- Writes a batch of customers; each one only if its watermarks are still those
-- the planner read (else another consumer or a zombie wrote in between, or Redis
-- lost data: the caller re-reads and re-plans). A customer's value is its
-- watermarks, a newline, then its dedup window and its state, so the watermarks
-- are the token. KEYS: the customers' keys. ARGV: per customer, expected watermarks, new value.
local results = {}
for k = 1, #KEYS do
  local expected, value = ARGV[2 * k - 1], ARGV[2 * k]
  local current = redis.call('GET', KEYS[k])
  local marks = ''
  if current then
    marks = string.sub(current, 1, (string.find(current, '\n', 1, true) or 1) - 1)
  end
  if marks == expected then
    redis.call('SET', KEYS[k], value)
    results[k] = 1
  else
    results[k] = 0
  end
end
return results
