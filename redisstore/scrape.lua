-- The counters of one swarm (see announce.lua for the keys). It writes
-- nothing.
--
-- KEYS: c, s4 l4 p4, s6 l6 p6.
-- ARGV: now (ms), peer TTL (ms).
-- Reply: {complete, incomplete, downloaded, downloaders}.

local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local c = redis.call('HMGET', KEYS[1], 'd', 'e4', 's4', 'l4', 'p4', 'e6', 's6', 'l6', 'p6')
local seeders, leechers, partial = 0, 0, 0
for f = 0, 1 do
	local e = tonumber(c[2 + 4 * f])
	if e then
		if now - e > ttl then
			-- Some members may have expired since the family's last
			-- announce: count the live ones.
			local k = 2 + 3 * f
			seeders = seeders + redis.call('ZCOUNT', KEYS[k], now - ttl, '+inf')
			leechers = leechers + redis.call('ZCOUNT', KEYS[k + 1], now - ttl, '+inf')
			partial = partial + redis.call('ZCOUNT', KEYS[k + 2], now - ttl, '+inf')
		else
			seeders = seeders + (tonumber(c[3 + 4 * f]) or 0)
			leechers = leechers + (tonumber(c[4 + 4 * f]) or 0)
			partial = partial + (tonumber(c[5 + 4 * f]) or 0)
		end
	end
end
return {seeders, leechers + partial, tonumber(c[1]) or 0, leechers}
