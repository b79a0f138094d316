-- The counters of one swarm (after lib.lua). It removes the expired
-- peers, when some may have expired, so that the counts are exact.
--
-- KEYS: see lib.lua.
-- ARGV: now (ms), peer TTL (ms).
-- Reply: {complete, incomplete, downloaded, downloaders}.

local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local c = redis.call('HMGET', KEYS[1], 'd', 'x4', 'e4', 's4', 'l4', 'p4', 'x6', 'e6', 's6', 'l6', 'p6')
local seeders, leechers, partial = 0, 0, 0
for f = 1, 2 do
	local _, e, n = counts(c, 2 + (f - 1) * 5)
	if e then
		if now - e > ttl then
			save(f, expire(f, n, now, now - ttl), n)
		end
		seeders, leechers, partial = seeders + n[1], leechers + n[2], partial + n[3]
	end
end
return {seeders, leechers + partial, tonumber(c[1]) or 0, leechers}
