-- Advances partition positions only where they still hold what this consumer
-- last saw. A missing or older value means Redis lost data since (restart
-- without persistence, FLUSHALL, failover): nothing is written, and the
-- consumer replays from what Redis still holds instead of hiding the hole.
-- KEYS[1]: the positions hash. ARGV: n x (field, expected ('' = none), new).
for i = 1, #ARGV, 3 do
  if (redis.call('HGET', KEYS[1], ARGV[i]) or '') ~= ARGV[i + 1] then return 0 end
end
for i = 1, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
end
return 1
