-- plan.lua - Batchy's write script: one call's writes, applied by Redis
-- atomically. The build embeds this file in batchy (the Makefile turns it
-- into a C array); store.c loads it with SCRIPT LOAD and resp.c builds
-- the EVALSHA that runs it.
--
-- KEYS[1] is the hash the call read, KEYS[2..] the
-- hashes to write. ARGV[1] is how many fields KEYS[1] held when it was
-- read (-1 when the write does not depend on it), followed by their names,
-- then their values. When KEYS[1] holds anything else now, nothing is
-- written and the answer is {"BATCHY_CHANGED", what it holds}, so that the
-- caller can start over without reading it again. Then, per hash to write:
-- its bty_write_mode (0 merge, 1 replace, 2 create), its field count and
-- its field/value pairs, or a count of -1 for "the same pairs as the hash
-- before" (a snapshot holds what <wf> gets). Every key is checked before
-- any is written, so a write is never half applied. HMGET and HSET take
-- their arguments in chunks: Lua's unpack has a limit. Redis' own cost
-- of a call is mostly per command and per argument, hence the shape.
-- The script never calls HGETALL or EXISTS, the commands of batchy's
-- reads and id probes, so that INFO commandstats counts those round trips
-- alone (scripts/bench.sh).

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
local e = tonumber(ARGV[1])
local a = 2
if e >= 0 then
  local n = redis.pcall('HLEN', KEYS[1])
  if type(n) == 'table' then return wrongtype(KEYS[1]) end
  local same = n == e
  local i = 0
  while same and i < e do
    local m = math.min(e - i, 1000)
    local got = redis.call('HMGET', KEYS[1], unpack(ARGV, a + i, a + i + m - 1))
    for j = 1, m do
      if got[j] ~= ARGV[a + e + i + j - 1] then same = false end
    end
    i = i + m
  end
  if not same then
    return {'BATCHY_CHANGED', holds(KEYS[1])}
  end
  a = a + 2 * e
end
local b = a
for i = 2, #KEYS do
  local k, n = KEYS[i], tonumber(ARGV[b + 1])
  if ARGV[b] == '2' then
    if redis.call('TYPE', k).ok ~= 'none' then
      return redis.error_reply('BATCHY_EXISTS ' .. k)
    end
  elseif k ~= KEYS[1] or e < 0 then
    local t = redis.call('TYPE', k).ok
    if t ~= 'hash' and t ~= 'none' then return wrongtype(k) end
  end
  b = b + 2 + math.max(n, 0) * 2
end
local from, count = a, 0
for i = 2, #KEYS do
  local k, n = KEYS[i], tonumber(ARGV[a + 1])
  if ARGV[a] == '1' then redis.call('DEL', k) end
  a = a + 2
  if n >= 0 then
    from, count = a, n
    a = a + 2 * n
  end
  local j = 0
  while j < count do
    local m = math.min(count - j, 500)
    redis.call('HSET', k, unpack(ARGV, from + 2 * j, from + 2 * (j + m) - 1))
    j = j + m
  end
end
return 'OK'
