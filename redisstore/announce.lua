-- One announce, atomically, in one round trip.
--
-- Every key of a swarm carries the swarm's hash tag, so that Redis Cluster
-- keeps a swarm in one slot. Per address family F (4 or 6):
--   sF, lF, pF  sorted sets of the seeders, the leechers and the partial
--               seeds (the classes), each member scored by its last
--               announce (ms); a member is the peer's identity hash (8
--               bytes), its IP address (4 or 16 bytes) and its port (2)
--   hF          hash: identity -> class (s, l or p; L or P for a leecher
--               whose completion was counted) and port (2 bytes)
-- and per swarm:
--   c           hash: d (snatches); per family xF (the time until which
--               the family's keys live), eF (no member of the family is
--               older: while now - eF <= TTL none has expired), sF, lF,
--               pF (the sizes of the sets, exact while none has expired)
--
-- KEYS: c, sF lF pF hF of the announcer's family F, sO lO pO of the other.
-- ARGV: now (ms), peer TTL (ms), swarm TTL (ms), member, event (0 none,
-- 1 started, 2 stopped, 3 completed, 4 paused), 1 if the peer seeds,
-- numwant, random seed, most peers in the swarm (0: no bound), F (4 or 6),
-- the most members of a sorted set in a listpack (Redis's
-- zset-max-listpack-entries).
-- Reply: {0, complete, incomplete, downloaded, members}, the members of
-- the sample one after the other in one string (in no random order), or
-- {1} when the swarm is full.
--
-- Classes are numbered 1 (seeders), 2 (leechers), 3 (partial seeds): the
-- class i set of the announcer's family is KEYS[1+i], of the other
-- KEYS[5+i]. The script builds few tables and strings: in Redis, Lua's
-- allocations cost more than the commands.

local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local me = ARGV[4]
local ev = tonumber(ARGV[5])
local seeding = ARGV[6] == '1'
local want = tonumber(ARGV[7])
local cut = now - ttl -- a member scored below it has expired
local ckey, states = KEYS[1], KEYS[5]
local id = string.sub(me, 1, 8)
local port = string.sub(me, -2)

-- Field names of c: the announcer's family first.
local fx, fe, fs, fo
local c
if ARGV[10] == '4' then
	fx, fe, fs = 'x4', 'e4', {'s4', 'l4', 'p4'}
	c = redis.call('HMGET', ckey, 'd', 'x4', 'e4', 's4', 'l4', 'p4', 'x6', 'e6', 's6', 'l6', 'p6')
else
	fx, fe, fs = 'x6', 'e6', {'s6', 'l6', 'p6'}
	c = redis.call('HMGET', ckey, 'd', 'x6', 'e6', 's6', 'l6', 'p6', 'x4', 'e4', 's4', 'l4', 'p4')
end
if ev == 2 and not (c[1] or c[2] or c[3] or c[7] or c[8]) then
	-- A stop in a swarm the store does not hold creates nothing.
	return {0, 0, 0, 0}
end
local snatches = tonumber(c[1]) or 0
local deadline = tonumber(c[2]) or 0
local odeadline = tonumber(c[7]) or 0
local n = {tonumber(c[4]) or 0, tonumber(c[5]) or 0, tonumber(c[6]) or 0}
local wrote = false

-- Expire the family's members, when one may have expired.
local e = tonumber(c[3])
if not e or now - e > ttl then
	local oldest = now
	for i = 1, 3 do
		local k = KEYS[1 + i]
		local gone
		repeat
			gone = redis.call('ZRANGEBYSCORE', k, '-inf', '(' .. cut, 'LIMIT', 0, 256)
			if #gone > 0 then
				redis.call('ZREM', k, unpack(gone))
				for j = 1, #gone do
					gone[j] = string.sub(gone[j], 1, 8)
				end
				redis.call('HDEL', states, unpack(gone))
			end
		until #gone < 256
		n[i] = redis.call('ZCARD', k)
		if n[i] > 0 then
			oldest = math.min(oldest, tonumber(redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')[2]))
		end
	end
	redis.call('HSET', ckey, fe, oldest, fs[1], n[1], fs[2], n[2], fs[3], n[3])
	wrote = true
end

-- The other family's sizes: from c while none of its members has expired,
-- else counted.
local os, ol, op = 0, 0, 0
local eo = tonumber(c[8])
if eo then
	if now - eo > ttl then
		os = redis.call('ZCOUNT', KEYS[6], cut, '+inf')
		ol = redis.call('ZCOUNT', KEYS[7], cut, '+inf')
		op = redis.call('ZCOUNT', KEYS[8], cut, '+inf')
	else
		os, ol, op = tonumber(c[9]) or 0, tonumber(c[10]) or 0, tonumber(c[11]) or 0
	end
end

local function resize(i, by)
	n[i] = n[i] + by
	redis.call('HINCRBY', ckey, fs[i], by)
end

local function snatch()
	if snatches == 0 then
		-- The snatch count outlives the peers by the swarm TTL.
		redis.call('PEXPIRE', ckey, math.max(tonumber(ARGV[3]), 2 * ttl, odeadline - now))
	end
	snatches = snatches + 1
	redis.call('HINCRBY', ckey, 'd', 1)
end

-- The announcer's record: its class, whether its completion was counted,
-- its port.
local st = redis.call('HGET', states, id)
local old, osnat, oport -- old is the class, 0 for a new peer
if st then
	old = string.find('slpSLP', string.sub(st, 1, 1), 1, true)
	osnat = old > 3
	if osnat then
		old = old - 3
	end
	oport = string.sub(st, 2, 3)
else
	old = 0
end

local class = 2
if seeding then
	class = 1
elseif ev == 4 then
	class = 3
end
local self = 0 -- the announcer's class once this announce is done; 0 if it stopped
local fresh = false -- whether a member was added, maybe to a new key

if ev == 2 then
	if old > 0 then
		-- A leecher that stops with nothing left has completed.
		if seeding and old > 1 and not osnat then
			snatch()
		end
		redis.call('ZREM', KEYS[1 + old], string.sub(me, 1, -3) .. oport)
		redis.call('HDEL', states, id)
		resize(old, -1)
		wrote = true
	end
else
	local completed = ev == 3
	local snat = false
	if old == 0 then
		local bound = tonumber(ARGV[9])
		if bound > 0 and n[1] + n[2] + n[3] + os + ol + op >= bound then
			return {1}
		end
		if completed then
			snatch()
			snat = not seeding
		end
	elseif (old == 1) == seeding then
		-- The same class: a leecher keeps its mark, and counts a
		-- completion it reports for the first time.
		if not seeding then
			snat = osnat
			if completed and not snat then
				snatch()
				snat = true
			end
		end
	elseif seeding then
		-- A leecher that became a seeder has completed.
		if not osnat then
			snatch()
		end
	else
		-- A seeder that leeches again completed before: a later
		-- completion does not count.
		snat = true
	end
	local nst
	if snat then
		nst = string.sub('SLP', class, class) .. port
	else
		nst = string.sub('slp', class, class) .. port
	end
	if nst ~= st then
		redis.call('HSET', states, id, nst)
	end
	local moved = old > 0 and (old ~= class or oport ~= port)
	if moved then
		redis.call('ZREM', KEYS[1 + old], string.sub(me, 1, -3) .. oport)
		resize(old, -1)
	end
	redis.call('ZADD', KEYS[1 + class], now, me)
	if moved or old == 0 then
		resize(class, 1)
		fresh = true
	end
	self = class
	wrote = true
end

-- Keys live until the family's deadline, which moves ahead by two TTLs
-- once less than one is left: every member lives at least a TTL past its
-- last announce, and idle swarms vanish with no collection job.
if wrote then
	if deadline - now < ttl then
		deadline = now + 2 * ttl
		redis.call('HSET', ckey, fx, deadline)
		for i = 2, 5 do
			redis.call('PEXPIRE', KEYS[i], 2 * ttl)
		end
		local keep = math.max(2 * ttl, odeadline - now)
		if snatches > 0 then
			keep = math.max(keep, tonumber(ARGV[3]))
		end
		redis.call('PEXPIRE', ckey, keep)
	elseif fresh then
		redis.call('PEXPIRE', KEYS[1 + class], deadline - now)
		redis.call('PEXPIRE', states, deadline - now)
	end
end

if self == 0 or want <= 0 then
	return {0, n[1] + os, n[2] + n[3] + ol + op, snatches}
end

-- The sample: how many of each class, then that many of each. A seeder
-- gets leechers and partial seeds only. The reply lists the sample in no
-- random order: the store shuffles it (that costs Lua more than Go).
local first = 1
if seeding then
	first = 2
end
local size = {0, 0, 0}
local total = 0
local listpack = tonumber(ARGV[11])
local small = true -- every class is in a listpack
for i = first, 3 do
	size[i] = n[i]
	if i == self then
		size[i] = size[i] - 1
	end
	total = total + size[i]
	small = small and n[i] <= listpack
end
local reply = {0, n[1] + os, n[2] + n[3] + ol + op, snatches}
local m = math.min(want, total)
if m <= 0 then
	return reply
end
math.randomseed(tonumber(ARGV[8]))
local take = {size[1], size[2], size[3]}
if m < total and small then
	-- Exactly uniform: a multivariate hypergeometric draw of the split,
	-- then ZRANDMEMBER in each class.
	local rest = take
	take = {0, 0, 0}
	local left = total
	for _ = 1, m do
		local r = math.random(left)
		local i = first
		while r > rest[i] do
			r = r - rest[i]
			i = i + 1
		end
		take[i] = take[i] + 1
		rest[i] = rest[i] - 1
		left = left - 1
	end
elseif m < total then
	-- Each class in proportion to its size, rounded up or down at random
	-- so that every peer is equally likely (a draw per peer would cost as
	-- much as the rest of the script).
	local left, need = total, m
	for i = first, 3 do
		if size[i] > 0 then
			local share = need * size[i]
			local k = math.floor(share / left)
			if math.random(left) <= share - k * left then
				k = k + 1
			end
			take[i] = k
			need, left = need - k, left - size[i]
		end
	end
end

-- sample appends k members of class i other than the announcer to out.
-- A set in a listpack (up to 128 members by default) gets ZRANDMEMBER,
-- which picks from it uniformly; a larger one, a skiplist with a hash
-- table, gets a window of k consecutive members (by last announce) from a
-- uniformly random rank, which makes every member equally likely, where
-- ZRANDMEMBER on a hash table favours some members several times over.
local out = {}
local function sample(i, k)
	local key = KEYS[1 + i]
	local mine = i == self
	local need = k
	if mine then
		need = k + 1 -- the announcer may be among them
	end
	local got
	local window = n[i] > listpack
	if not window then
		got = redis.call('ZRANDMEMBER', key, need)
	else
		local start = math.random(size[i]) - 1
		if mine and start >= redis.call('ZRANK', key, me) then
			start = start + 1 -- a uniform rank among the others
		end
		got = redis.call('ZRANGE', key, start, start + need - 1)
		if #got < need then
			local more = redis.call('ZRANGE', key, 0, need - #got - 1)
			for j = 1, #more do
				got[#got + 1] = more[j]
			end
		end
	end
	local drop = 0
	if mine then
		for j = 1, #got do
			if got[j] == me then
				drop = j
			end
		end
		if drop == 0 and #got > k then
			-- Not among them: a window ends one earlier; from ZRANDMEMBER,
			-- whose order is not random, a random one goes.
			if window then
				drop = #got
			else
				drop = math.random(#got)
			end
		end
	end
	for j = 1, #got do
		if j ~= drop then
			out[#out + 1] = got[j]
		end
	end
end

for i = first, 3 do
	if take[i] > 0 then
		sample(i, take[i])
	end
end
reply[5] = table.concat(out)
return reply
