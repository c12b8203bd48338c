-- plan.lua - Batchy's write script: one call's writes, applied by Redis
-- atomically. The build embeds this file in batchy (the Makefile turns it
-- into a C array); store.c loads it with SCRIPT LOAD and resp.c builds
-- the EVALSHA that runs it.
--
-- KEYS[1] is the hash the call computed from (<wf>), KEYS[2..] the hashes
-- to write. ARGV:
--   [1] how the write depends on KEYS[1]: '-' not at all (nothing is
--       compared), 'all' on the whole hash (it must hold exactly the E
--       fields sent), 'some' on the first M fields sent only (the other
--       E - M are what the call believed the rest to be);
--   [2] M, [3] E, then E field names, then their E values;
--   then per hash to write: its mode ('0' merge, '1' replace, '2' create),
--   for '2' the prefix of its key ("<wf>-", the key being prefix .. id),
--   its field count and its field/value pairs, or a count of -1 for "the
--   same pairs as the hash before" (a snapshot holds what <wf> gets);
--   then the channel to announce the write on, and last, how many batch
--   snapshots to keep (0: all).
--
-- Besides the hashes, a write keeps Batchy's indexes under "batchy:" (a
-- workflow name cannot hold ':'), in the same atomic step:
--   batchy:workflows        set: every workflow loaded through Batchy;
--   batchy:batches:<wf>     sorted set: the ids of <wf>'s batch snapshots
--                           (<wf>-<id>), scored by id;
--   batchy:inits:<wf>       sorted set: the epochs of its load_cfg
--                           snapshots (<wf>-<epoch>-init).
-- A snapshot written is indexed; when that makes more than the number to
-- keep (the last argument; 10 for load_cfg's), the oldest are deleted, key
-- and index entry, here. Nothing else ever scans or trims.
--
-- Answers:
--   'OK'                            written;
--   {'BATCHY_CHANGED', pairs}       nothing written: what the call depends
--                                   on changed; pairs is what KEYS[1] holds,
--                                   for the call to start over from;
--   {'BATCHY_WRITTEN', pairs}       written, with mode 'some', while other
--                                   fields of KEYS[1] had changed: pairs is
--                                   what it holds now, to answer with;
--   error 'BATCHY_EXISTS <id>'      nothing written: a key to create exists;
--                                   <id> is the first free one after it;
--   error 'WRONGTYPE ...'           nothing written: a key is not a hash.
--
-- Every key is checked before any is written, so a write is never half
-- applied. HMGET and HSET take their arguments in chunks: Lua's unpack has
-- a limit. Redis' own cost of a call is mostly per command and per
-- argument, hence the shape. The script never calls HGETALL or EXISTS,
-- the commands of batchy's reads, so that INFO commandstats counts those
-- round trips alone (scripts/bench.sh, tests/integration/test_store.py).

local function holds(k)
  local names, out, n, i = redis.call('HKEYS', k), {}, 0, 0
  while i < #names do
    local m = math.min(#names - i, 1000)
    local values = redis.call('HMGET', k, unpack(names, i + 1, i + m))
    for j = 1, m do
      out[n + 1], out[n + 2], n = names[i + j], values[j], n + 2
    end
    i = i + m
  end
  return out
end
local function wrongtype(k)
  return redis.error_reply('WRONGTYPE key ' .. k .. ' is a ' ..
                           redis.call('TYPE', k).ok .. ', not a hash')
end
-- Do fields from+1..to of those sent hold the values sent?
local function same(k, e, from, to)
  local i = from
  while i < to do
    local m = math.min(to - i, 1000)
    local got = redis.call('HMGET', k, unpack(ARGV, 4 + i, 3 + i + m))
    for j = 1, m do
      if got[j] ~= ARGV[3 + e + i + j] then return false end
    end
    i = i + m
  end
  return true
end

local mode, m, e = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stale = false
if mode ~= '-' then
  local n = redis.pcall('HLEN', KEYS[1])
  if type(n) == 'table' then return wrongtype(KEYS[1]) end
  if (mode == 'all' and n ~= e) or not same(KEYS[1], e, 0, m) then
    return {'BATCHY_CHANGED', holds(KEYS[1])}
  end
  if mode == 'some' then
    stale = n ~= e or not same(KEYS[1], e, m, e)
  end
end
local a = 4 + 2 * e
local b = a
for i = 2, #KEYS do
  local k, w = KEYS[i], ARGV[b]
  if w == '2' then
    local prefix = ARGV[b + 1]
    b = b + 1
    if redis.call('TYPE', k).ok ~= 'none' then
      -- the first free id after it, in this one round trip
      local id = tonumber(string.sub(k, #prefix + 1))
      repeat
        id = id + 1
      until redis.call('TYPE', prefix .. string.format('%.0f', id)).ok == 'none'
      return redis.error_reply('BATCHY_EXISTS ' .. string.format('%.0f', id))
    end
  elseif k ~= KEYS[1] or mode == '-' then
    local t = redis.call('TYPE', k).ok
    if t ~= 'hash' and t ~= 'none' then return wrongtype(k) end
  end
  b = b + 2 + math.max(tonumber(ARGV[b + 1]), 0) * 2
end
local from, count, made = a, 0, {}
for i = 2, #KEYS do
  local k, w = KEYS[i], ARGV[a]
  made[i] = w ~= '0'
  if w == '1' then redis.call('DEL', k) end
  if w == '2' then a = a + 1 end
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  if n >= 0 then
    from, count = a, n
    a = a + 2 * n
  end
  local j = 0
  while j < count do
    local c = math.min(count - j, 500)
    redis.call('HSET', k, unpack(ARGV, from + 2 * j, from + 2 * (j + c) - 1))
    j = j + c
  end
end
-- The indexes, and retention (see the top).
local wf = KEYS[1]
local keep = tonumber(ARGV[#ARGV])
local function trim(index, n, prefix, suffix)
  if n <= 0 then return end
  -- all but the newest n, oldest first: usually none, or the one this
  -- write made surplus
  local old = redis.call('ZRANGE', index, 0, -n - 1)
  if #old == 0 then return end
  for _, id in ipairs(old) do redis.call('UNLINK', prefix .. id .. suffix) end
  redis.call('ZREMRANGEBYRANK', index, 0, #old - 1)
end
-- Only a snapshot made (created by an open, or replaced by a load) is
-- indexed, and only it can make one surplus: a close or fail adds to a
-- snapshot made, and indexed, before. (State written before the indexes
-- is indexed once by scripts/index-state.) A workflow is listed when a
-- load replaces it.
for i = 2, #KEYS do
  local k = KEYS[i]
  if k == wf and made[i] then redis.call('SADD', 'batchy:workflows', wf) end
  if made[i] and k ~= wf and string.sub(k, 1, #wf + 1) == wf .. '-' then
    local rest = string.sub(k, #wf + 2)
    local id = string.match(rest, '^(%d+)$')
    if id then
      redis.call('ZADD', 'batchy:batches:' .. wf, id, id)
      trim('batchy:batches:' .. wf, keep, wf .. '-', '')
    else
      id = string.match(rest, '^(%d+)%-init$')
      if id then
        redis.call('ZADD', 'batchy:inits:' .. wf, id, id)
        trim('batchy:inits:' .. wf, 10, wf .. '-', '-init')
      end
    end
  end
end
-- The change notice, in the same atomic step: every Batchy process
-- subscribed to the channel wakes what waits on the workflow (notice.c).
redis.call('PUBLISH', ARGV[#ARGV - 1], wf)
if stale then return {'BATCHY_WRITTEN', holds(KEYS[1])} end
return 'OK'
