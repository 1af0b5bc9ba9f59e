-- claim(ARGV = now, limit, worker, token, lease_until, queue names... (none: every queue with
-- queued jobs, as the counters in K_STATS name them))
-- Moves up to `limit` queued jobs of unpaused queues to running, best first (priority, then
-- scheduled_at, then id) across the queues. Nothing is popped: each job moves, in this one
-- script, from its queue's zset to the running zset by lease expiry. Returns the jobs.
local now, limit, worker, token, lease = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local queues = {}
if #ARGV > 5 then
    for i = 6, #ARGV do queues[#queues + 1] = ARGV[i] end
else
    local counters = redis.call("HGETALL", K_STATS)
    for i = 1, #counters, 2 do
        if string.sub(counters[i], 1, 7) == "queued:" then
            queues[#queues + 1] = string.sub(counters[i], 8)
        end
    end
end
local paused = {}
for _, q in ipairs(redis.call("SMEMBERS", K_PAUSED)) do paused[q] = true end

local candidates = {}
for _, q in ipairs(queues) do
    if not paused[q] then
        local r = redis.call("ZRANGE", qkey(q), 0, limit - 1, "WITHSCORES")
        for i = 1, #r, 2 do
            candidates[#candidates + 1] = {tonumber(r[i + 1]), r[i], q}
        end
    end
end
table.sort(candidates, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
end)

COUNT = {}
local out = {}
for i = 1, math.min(limit, #candidates) do
    local c = candidates[i]
    local id = qmember_id(c[2])
    local f = id and read_job(id)
    if f and f.state == "queued" then
        state_remove(id, f)
        local attempts = string.format("%d", (tonumber(f.attempts) or 0) + 1)
        redis.call("HSET", jkey(id), "state", "running", "attempts", attempts, "started_at", now,
                   "claim_token", token, "worker", worker, "lease_until", lease,
                   "cancel_requested", "0")
        f.state, f.lease_until = "running", lease
        state_add(id, f)
        out[#out + 1] = hgetall(id)
    else
        redis.call("ZREM", qkey(c[3]), c[2])  -- a stale member: its job is gone or moved
    end
end
flush()
return out
