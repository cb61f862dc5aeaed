-- Card index entries: each sets one holder's entry for a card number, replacing its previous one.
-- A field lists a card number's holders: `customerId:claimTime,...` (ms), `customerId:D` for a holder
-- whose card is DELETED (it does not resolve to them, even through a profile's cardnumber identifier).
-- The entry is the holder's whole card state, so writing it again (a replay) changes nothing.
-- KEYS: card hashes. ARGV: per key, the card number (field), customerId and claim time or 'D'.
for k = 1, #KEYS do
  local field, member, claim = ARGV[3 * k - 2], ARGV[3 * k - 1], ARGV[3 * k]
  local entries = {}
  for entry in string.gmatch(redis.call('HGET', KEYS[k], field) or '', '[^,]+') do
    if string.match(entry, '^(%d+):') ~= member then entries[#entries + 1] = entry end
  end
  entries[#entries + 1] = member .. ':' .. claim
  redis.call('HSET', KEYS[k], field, table.concat(entries, ','))
end
return #KEYS
