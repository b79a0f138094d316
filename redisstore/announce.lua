-- One announce, atomically, in one round trip (after lib.lua).
--
-- KEYS: see lib.lua.
-- ARGV: now (ms), peer TTL (ms), swarm TTL (ms), the announcer's record,
-- event (0 none, 1 started, 2 stopped, 3 completed, 4 paused), 1 if the
-- peer seeds, numwant, random seed, most peers in the swarm (0: no
-- bound), the announcer's family (1 IPv4, 2 IPv6).
-- Reply: {0, complete, incomplete, downloaded, outcome, records}: the
-- outcome is 1 when the announcer joined, 2 when it left, plus 4 when
-- the announce counted a snatch; the sample's records come one after the
-- other in one string, in no random order, and are left out when there
-- are none. {1} when the swarm is full.

local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local me = ARGV[4]
local ev = tonumber(ARGV[5])
local seeding = ARGV[6] == '1'
local want = tonumber(ARGV[7])
local F = tonumber(ARGV[10])
local O = 3 - F
local cut = now - ttl -- a peer last heard from before has expired
local ckey = KEYS[1]
local id, port = string.sub(me, 1, 8), string.sub(me, -2)
local r = RECORD[F]

local c = redis.call('HMGET', ckey, 'd', 'x4', 'e4', 's4', 'l4', 'p4', 'x6', 'e6', 's6', 'l6', 'p6')
if ev == 2 and not (c[1] or c[2] or c[3] or c[7] or c[8]) then
	-- A stop in a swarm the store does not hold creates nothing.
	return {0, 0, 0, 0, 0}
end
local snatches = tonumber(c[1]) or 0
local X, E, N = {}, {}, {}
X[1], E[1], N[1] = counts(c, 2)
X[2], E[2], N[2] = counts(c, 7)
local changed = {false, false} -- the family's counts to write back
local wrote = false
local outcome = 0 -- 1 joined, 2 left, plus 4 for a snatch

-- Expire the families' peers, when one may have expired. The announcer's
-- family without counters starts afresh, dropping whatever keys are left.
if not E[F] then
	redis.call('DEL', key(F, 1), key(F, 2), key(F, 3), key(F, 4), key(F, 5))
	E[F] = now
	changed[F] = true
end
for _, f in ipairs({F, O}) do
	if E[f] and now - E[f] > ttl then
		E[f] = expire(f, N[f], now, cut)
		changed[f] = true
	end
end
local n = N[F]

local function snatch()
	if snatches == 0 then
		-- The snatch count outlives the peers by the swarm TTL.
		redis.call('PEXPIRE', ckey, math.max(tonumber(ARGV[3]), 2 * ttl, X[O] - now))
	end
	snatches = snatches + 1
	outcome = outcome + 4
	redis.call('HINCRBY', ckey, 'd', 1)
end

-- The announcer's state, 0 as its class if it is new.
local st = redis.call('HGET', key(F, 2), id)
local old, osnat, oport, oslot = 0, false, nil, nil
if st then
	old, osnat, oport, oslot = decode(st)
end
local class = 2
if seeding then
	class = 1
elseif ev == 4 then
	class = 3
end
local self, slot = 0, 0 -- its class and slot once this announce is done; 0 if it stopped
local before = n[1] + n[2] + n[3] -- the family's peers, before the announcer joins

if ev == 2 then
	if old > 0 then
		-- A leecher that stops with nothing left has completed.
		if seeding and old > 1 and not osnat then
			snatch()
		end
		drop(F, n, old, oslot)
		redis.call('ZREM', key(F, 1), id)
		redis.call('HDEL', key(F, 2), id)
		changed[F], wrote = true, true
		outcome = outcome + 2
	end
else
	local completed = ev == 3
	local snat = false
	if old == 0 then
		local bound = tonumber(ARGV[9])
		if bound > 0 and before + N[O][1] + N[O][2] + N[O][3] >= bound then
			return {1}
		end
		outcome = outcome + 1
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
	slot = oslot
	if old ~= class then
		if old > 0 then
			drop(F, n, old, oslot)
		end
		slot = n[class]
		redis.call('SETRANGE', key(F, 2 + class), slot * r, me)
		n[class] = slot + 1
		changed[F] = true
	elseif oport ~= port then
		redis.call('SETRANGE', key(F, 2 + class), slot * r, me)
	end
	local nst = encode(class, snat, port, slot)
	if nst ~= st then
		redis.call('HSET', key(F, 2), id, nst)
	end
	redis.call('ZADD', key(F, 1), now, id)
	self, wrote = class, true
end

-- Keys live until the family's deadline x, which moves two TTLs ahead
-- once less than one is left: every peer lives at least a TTL past its
-- last announce, and idle swarms vanish with no collection job. A key
-- made since the last move gets the same deadline.
if wrote then
	if X[F] - now < ttl then
		X[F] = now + 2 * ttl
		redis.call('HSET', ckey, FIELDS[F][1], X[F])
		for k = 1, 5 do
			redis.call('PEXPIRE', key(F, k), 2 * ttl)
		end
		local keep = math.max(2 * ttl, X[O] - now)
		if snatches > 0 then
			keep = math.max(keep, tonumber(ARGV[3]))
		end
		redis.call('PEXPIRE', ckey, keep)
	elseif self > 0 then
		if before == 0 then
			redis.call('PEXPIRE', key(F, 1), X[F] - now)
			redis.call('PEXPIRE', key(F, 2), X[F] - now)
		end
		if slot == 0 and old ~= class then
			redis.call('PEXPIRE', key(F, 2 + class), X[F] - now)
		end
	end
end
for f = 1, 2 do
	if changed[f] then
		save(f, E[f], N[f])
	end
end

local reply = {0, N[1][1] + N[2][1], N[1][2] + N[1][3] + N[2][2] + N[2][3], snatches, outcome}
if self == 0 or want <= 0 then
	return reply
end

-- The sample: how many of each class, in proportion to the classes'
-- sizes, rounded up or down at random so that every peer is equally
-- likely; then, in each class, a window of consecutive records from a
-- uniformly random slot, wrapping around. A seeder gets leechers and
-- partial seeds only.
local first = 1
if seeding then
	first = 2
end
local size = {0, 0, 0}
local total = 0
for i = first, 3 do
	size[i] = n[i]
	if i == self then
		size[i] = size[i] - 1
	end
	total = total + size[i]
end
local m = math.min(want, total)
if m <= 0 then
	return reply
end
math.randomseed(tonumber(ARGV[8]))
local out = {}
local left = total
for i = first, 3 do
	local k = 0
	if size[i] > 0 then
		local share = m * size[i]
		k = math.floor(share / left)
		if math.random(left) <= share - k * left then
			k = k + 1
		end
		m, left = m - k, left - size[i]
	end
	if k > 0 then
		local a, cnt, need = key(F, 2 + i), n[i], k
		local start = math.random(size[i]) - 1
		if i == self then
			-- A uniform slot among the others, and one record more, in
			-- case the announcer's is among them.
			if start >= slot then
				start = start + 1
			end
			need = k + 1
		end
		local s
		if start + need <= cnt then
			s = redis.call('GETRANGE', a, start * r, (start + need) * r - 1)
		else
			s = redis.call('GETRANGE', a, start * r, cnt * r - 1) ..
				redis.call('GETRANGE', a, 0, (start + need - cnt) * r - 1)
		end
		if i == self then
			local pos = (slot - start) % cnt
			if pos < need then
				s = string.sub(s, 1, pos * r) .. string.sub(s, (pos + 1) * r + 1)
			else
				s = string.sub(s, 1, k * r)
			end
		end
		out[#out + 1] = s
	end
end
reply[6] = table.concat(out)
return reply
