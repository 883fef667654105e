-- Group commit for one service point; every key shares the service point's hash tag.
-- KEYS[1] is the service point's epoch key, ARGV[1] the committing actor's epoch: a
-- stale actor (one that another incarnation replaced) can write nothing.
-- ARGV[2..] is a list of operations:
--   S key prev version snapshot   order snapshot, only if the stored version is prev
--   J key entry                   append to an order's journal
-- S and J also clear the key's expiry: the drainer gives an order's keys the retention
-- once the record holds that version, closed; a newer version (a refund reopening it)
-- lives until it is drained in its turn, whatever the record was doing meanwhile.
--   H key field value             HSET
--   D key field                   HDEL
--   R key value ttl_ms            SET with expiry
--   A key member                  SADD (the day's index of orders with activity)
--   X key kind at refund order    XADD to the outbox stream (payment events)
--   C key order version           XADD to the change stream (drained to PostgreSQL)
--   P channel message             PUBLISH (after everything is written)
--   K key prev head ttl_ms        move a journal chain's head (store/chain.py), only if it
--                                 is prev ('' for a chain not begun): the batch's entries
--                                 were linked after prev, so a stale head writes nothing
local width = {S = 5, J = 3, H = 4, D = 3, R = 4, A = 3, X = 6, C = 4, P = 3, K = 5}

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('WPFENCED another actor took this service point over')
end

-- First pass: check every expected version and chain head, so that a conflict writes
-- nothing.
local i = 2
while i <= #ARGV do
  local op = ARGV[i]
  if width[op] == nil then
    return redis.error_reply('WPBADOP ' .. tostring(op))
  end
  if op == 'S' then
    local stored = redis.call('HGET', KEYS[tonumber(ARGV[i + 1])], 'v')
    if (stored or '') ~= ARGV[i + 2] then
      return redis.error_reply('WPCONFLICT ' .. KEYS[tonumber(ARGV[i + 1])] ..
        ' is at version ' .. tostring(stored) .. ', expected ' .. ARGV[i + 2])
    end
  elseif op == 'K' then
    local head = redis.call('GET', KEYS[tonumber(ARGV[i + 1])]) or ''
    if head ~= ARGV[i + 2] then
      return redis.error_reply('WPCHAIN ' .. KEYS[tonumber(ARGV[i + 1])] ..
        ' is at "' .. head .. '", expected "' .. ARGV[i + 2] .. '"')
    end
  end
  i = i + width[op]
end

i = 2
local published = 0
while i <= #ARGV do
  local op = ARGV[i]
  local a, b, c, d = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if op == 'S' then
    redis.call('HSET', KEYS[tonumber(a)], 'v', c, 's', d)
    redis.call('PERSIST', KEYS[tonumber(a)])
  elseif op == 'J' then
    redis.call('RPUSH', KEYS[tonumber(a)], b)
    redis.call('PERSIST', KEYS[tonumber(a)])
  elseif op == 'H' then
    redis.call('HSET', KEYS[tonumber(a)], b, c)
  elseif op == 'D' then
    redis.call('HDEL', KEYS[tonumber(a)], b)
  elseif op == 'R' then
    redis.call('SET', KEYS[tonumber(a)], b, 'PX', c)
  elseif op == 'A' then
    redis.call('SADD', KEYS[tonumber(a)], b)
  elseif op == 'X' then
    redis.call('XADD', KEYS[tonumber(a)], '*', 'kind', b, 'at', c, 'refund', d,
      'order', ARGV[i + 5])
  elseif op == 'C' then
    redis.call('XADD', KEYS[tonumber(a)], '*', 'o', b, 'v', c)
  elseif op == 'K' then
    redis.call('SET', KEYS[tonumber(a)], c, 'PX', d)
  elseif op == 'P' then
    redis.call('PUBLISH', a, b)
    published = published + 1
  end
  i = i + width[op]
end
return published
