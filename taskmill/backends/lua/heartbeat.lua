-- heartbeat(ARGV = lease_until, then job id and claim token pairs)
-- Extends the lease of each job still running under its token; returns the ids that lost it.
local lease = ARGV[1]
local lost = {}
for i = 2, #ARGV, 2 do
    local id, token = ARGV[i], ARGV[i + 1]
    local v = redis.call("HMGET", jkey(id), "state", "claim_token")
    if v[1] == "running" and v[2] == token then
        redis.call("HSET", jkey(id), "lease_until", lease)
        redis.call("ZADD", K_RUN, lease, tmember(id))
    else
        lost[#lost + 1] = id
    end
end
return lost
