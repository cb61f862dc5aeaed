-- Writes a batch of customers; each one only if its watermarks are still those
-- the planner read (else another consumer or a zombie wrote in between, or Redis
-- lost data: the caller re-reads and re-plans). A customer's value is its
-- watermarks, a newline, then its dedup window and its state, so the watermarks
-- are the token. KEYS: the customers' keys. ARGV: per customer, expected watermarks, new value.
-- Only the value's first bytes are read (GETRANGE): copying a whole value into Lua
-- cost a quarter of the write's time at 2 KB.
local results = {}
for k = 1, #KEYS do
  local expected, value = ARGV[2 * k - 1], ARGV[2 * k]
  local same = redis.call('GETRANGE', KEYS[k], 0, #expected) == expected .. '\n'
  if not same and expected == '' then
    -- no watermarks expected: also a missing key, or a value without a newline
    local current = redis.call('GET', KEYS[k])
    same = not current or not string.find(current, '\n', 1, true)
  end
  if same then
    redis.call('SET', KEYS[k], value)
    results[k] = 1
  else
    results[k] = 0
  end
end
return results
