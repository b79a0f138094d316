-- What the announce and scrape scripts share: the layout of a swarm's
-- keys, and the removal of peers.
--
-- Every key of a swarm carries the swarm's hash tag, so that Redis Cluster
-- keeps a swarm in one slot. KEYS[1] is the swarm's counters c; then, for
-- the address families f = 1 (IPv4) and 2 (IPv6), five keys each:
--   z   sorted set: the peers' identities (8-byte hashes), scored by their
--       last announce (ms), for expiry
--   h   hash: identity -> state, 7 bytes: the class (s seeder, l leecher,
--       p partial seed; S, L, P once a completion was counted), the port
--       (2 bytes) and the peer's slot in its class's array (4 bytes)
--   a1, a2, a3
--       strings, one per class: arrays of records, identity, address and
--       port (14 bytes for IPv4, 26 for IPv6), with no gap: a peer that
--       leaves gets the last record in its slot
-- c is a hash: d (snatches) and per family x (the time until which the
-- family's keys live), e (no peer of the family was heard from before:
-- while now - e <= TTL none has expired), and the sizes of the classes
-- (s, l, p), exact once expired peers are removed; the fields are named
-- with the family's suffix: x4, e4, s4, l4, p4, x6, ...

local RECORD = {14, 26}
local FIELDS = {{'x4', 'e4', 's4', 'l4', 'p4'}, {'x6', 'e6', 's6', 'l6', 'p6'}}

-- key returns a key of family f: 1 z, 2 h, 2+i the array of class i.
local function key(f, k)
	return KEYS[1 + (f - 1) * 5 + k]
end

-- decode returns the class, whether a completion was counted, the port
-- and the slot in a state.
local function decode(st)
	local class = string.find('slpSLP', string.sub(st, 1, 1), 1, true)
	local snat = class > 3
	if snat then
		class = class - 3
	end
	return class, snat, string.sub(st, 2, 3), (struct.unpack('>I4', st, 4))
end

-- encode returns a state.
local function encode(class, snat, port, slot)
	local letters = 'slp'
	if snat then
		letters = 'SLP'
	end
	return string.sub(letters, class, class) .. port .. struct.pack('>I4', slot)
end

-- drop removes the record in slot of class i of family f, whose class
-- sizes are n: the last record moves into the slot.
local function drop(f, n, i, slot)
	local a, r = key(f, 2 + i), RECORD[f]
	local last = n[i] - 1
	if slot ~= last then
		local rec = redis.call('GETRANGE', a, last * r, last * r + r - 1)
		redis.call('SETRANGE', a, slot * r, rec)
		local moved = string.sub(rec, 1, 8)
		local class, snat, port = decode(redis.call('HGET', key(f, 2), moved))
		redis.call('HSET', key(f, 2), moved, encode(class, snat, port, slot))
	end
	n[i] = last
	if last == 0 then
		redis.call('DEL', a)
	elseif last % 64 == 0 and redis.call('STRLEN', a) > 2 * last * r + 64 * r then
		-- The array shrank to less than half its length: give the rest back.
		redis.call('SET', a, redis.call('GETRANGE', a, 0, last * r - 1), 'KEEPTTL')
	end
end

-- expire removes the peers of family f last heard from before cut, and
-- returns when the oldest peer left was (now when none is left).
local function expire(f, n, now, cut)
	local z, h = key(f, 1), key(f, 2)
	local gone
	repeat
		gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. cut, 'LIMIT', 0, 256)
		for j = 1, #gone do
			local st = redis.call('HGET', h, gone[j])
			if st then
				local class, _, _, slot = decode(st)
				drop(f, n, class, slot)
			end
		end
		if #gone > 0 then
			redis.call('ZREM', z, unpack(gone))
			redis.call('HDEL', h, unpack(gone))
		end
	until #gone < 256
	local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')[2]
	if oldest then
		return tonumber(oldest)
	end
	return now
end

-- counts reads a family's fields from a reply of HMGET c, starting at
-- index b: x, e (nil for a family without counters) and the class sizes.
local function counts(c, b)
	return tonumber(c[b]) or 0, tonumber(c[b + 1]),
		{tonumber(c[b + 2]) or 0, tonumber(c[b + 3]) or 0, tonumber(c[b + 4]) or 0}
end

-- save writes family f's oldest time and class sizes into c.
local function save(f, e, n)
	local k = FIELDS[f]
	redis.call('HSET', KEYS[1], k[2], e, k[3], n[1], k[4], n[2], k[5], n[3])
end
