-- promote_due(ARGV = now, limit): moves up to `limit` scheduled jobs whose time has come
-- (scheduled_at <= now), earliest first, to queued. Returns how many.
local members = redis.call("ZRANGEBYSCORE", K_SCHED, "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local n = 0
COUNT = {}
for _, member in ipairs(members) do
    local id = tmember_id(member)
    local f = read_job(id)
    if f and f.state == "scheduled" then
        state_remove(id, f)
        redis.call("HSET", jkey(id), "state", "queued")
        f.state = "queued"
        state_add(id, f)
        n = n + 1
    else
        redis.call("ZREM", K_SCHED, member)
    end
end
flush()
if n > 0 then wake() end
return n
