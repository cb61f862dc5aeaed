-- Writes a batch of customers; each customer is all-or-nothing and only if its
-- watermarks still hold the values the planner read (else a zombie or a
-- concurrent consumer wrote in between: the caller re-reads and re-plans).
-- KEYS: per customer, its state hash and its dedup zset.
-- ARGV: now_ms, window_ms, then per customer:
--   state JSON ('' = unchanged), n, n x (field, expected ('' = none), new), m, m x eventId
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local results, a = {}, 3
for k = 1, #KEYS, 2 do
  local state_key, dedup_key = KEYS[k], KEYS[k + 1]
  local state, n = ARGV[a], tonumber(ARGV[a + 1])
  local marks = a + 2
  local m = tonumber(ARGV[marks + 3 * n])
  local ids = marks + 3 * n + 1
  a = ids + m

  local ok = 1
  for i = 0, n - 1 do
    local current = redis.call('HGET', state_key, ARGV[marks + 3 * i]) or ''
    if current ~= ARGV[marks + 3 * i + 1] then ok = 0 end
  end
  if ok == 1 then
    local fields = {}
    if state ~= '' then fields[#fields + 1] = 'd'; fields[#fields + 1] = state end
    for i = 0, n - 1 do
      fields[#fields + 1] = ARGV[marks + 3 * i]
      fields[#fields + 1] = ARGV[marks + 3 * i + 2]
    end
    redis.call('HSET', state_key, unpack(fields))
    if m > 0 then
      local members = {}
      for i = 0, m - 1 do
        members[#members + 1] = now
        members[#members + 1] = ARGV[ids + i]
      end
      redis.call('ZADD', dedup_key, unpack(members))
      redis.call('ZREMRANGEBYSCORE', dedup_key, '-inf', '(' .. (now - window))
      redis.call('PEXPIRE', dedup_key, window)
    end
  end
  results[#results + 1] = ok
end
return results
