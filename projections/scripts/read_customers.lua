-- Reads a batch of customers in one call: each one's value (watermarks, a newline, the dedup window,
-- the state). KEYS: the customers' keys.
local out = {}
for k = 1, #KEYS do
  out[k] = redis.call('GET', KEYS[k])
end
return out
