-- An order put back into Redis from the record, fenced: whoever finds the snapshot
-- absent writes it, with its journal and indexes, in this one step; a second reload of
-- the same order (another actor's, the drainer's) finds it present and writes nothing.
-- KEYS: the snapshot, the journal, the open set, the missing set (one service point).
-- ARGV: order id, version, snapshot, retention in ms (used if closed), window if the
--       order is open ('' if closed), '1' to put it back only while the open set names
--       it, then the journal entries, oldest first.
if redis.call('EXISTS', KEYS[1]) == 1
    or (ARGV[6] == '1' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0) then
  redis.call('SREM', KEYS[4], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
redis.call('DEL', KEYS[2])
for i = 7, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
if ARGV[5] ~= '' then
  -- Open: kept, and in the actor's care again.
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
else
  -- Closed and in the record: it leaves again after the retention, as when it was
  -- drained (a commit that reopens it clears the expiry).
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('SREM', KEYS[4], ARGV[1])
return 1
