-- Identifier index changes, in log order (a key may come more than once).
-- An identifier is a field of an index hash; its value lists its claimants:
-- `customerId:claimTime,...` (ms).
-- A claim makes its customer the latest claimant. Claims are applied in log
-- order within a partition, so a later claim must outrank every earlier one
-- even when its occurredAt is not later (clock skew, equal timestamps); across
-- partitions, which have no common order, occurredAt decides.
-- A release (claim time '-') removes a customer that no longer lists it.
-- KEYS: index hashes. ARGV: per key, the identifier (field), customerId and claim time or '-'.
for k = 1, #KEYS do
  local field, member, claim = ARGV[3 * k - 2], ARGV[3 * k - 1], ARGV[3 * k]
  local others, own, top = {}, nil, nil  -- the other claimants; this customer's claim time; theirs, latest
  for id, at in string.gmatch(redis.call('HGET', KEYS[k], field) or '', '(%d+):(%-?%d+)') do
    local score = tonumber(at)
    if id == member then
      own = score
    else
      others[#others + 1] = id .. ':' .. at
      if not top or score > top then top = score end
    end
  end
  if claim ~= '-' then
    local score = tonumber(claim)
    if own and own > score then score = own end
    if top and top >= score then score = top + 1 end
    others[#others + 1] = member .. ':' .. string.format('%.0f', score)
  end
  if #others > 0 then
    redis.call('HSET', KEYS[k], field, table.concat(others, ','))
  else
    redis.call('HDEL', KEYS[k], field)
  end
end
return #KEYS
