-- Writes a batch of customers; each one only if its watermarks are still those
-- the planner read (else another consumer or a zombie wrote in between, or Redis
-- lost data: the caller re-reads and re-plans). A customer's value is its
-- watermarks, a newline, then its state, so the watermarks are the token.
-- KEYS: per customer, its state key and its dedup zset.
-- ARGV: now_ms, window_ms, then per customer:
--   expected watermarks, new value, m, m x eventId
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local results, a = {}, 3
for k = 1, #KEYS, 2 do
  local expected, value, m = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local ids = a + 3
  a = ids + m
  local current = redis.call('GET', KEYS[k])
  local marks = ''
  if current then
    marks = string.sub(current, 1, (string.find(current, '\n', 1, true) or 1) - 1)
  end
  if marks == expected then
    redis.call('SET', KEYS[k], value)
    if m > 0 then
      local members = {}
      for i = 0, m - 1 do
        members[#members + 1] = now
        members[#members + 1] = ARGV[ids + i]
      end
      redis.call('ZADD', KEYS[k + 1], unpack(members))
      redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', '(' .. (now - window))
      redis.call('PEXPIRE', KEYS[k + 1], window)
    end
    results[#results + 1] = 1
  else
    results[#results + 1] = 0
  end
end
return results
