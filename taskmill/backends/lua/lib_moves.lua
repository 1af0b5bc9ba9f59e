-- Shared by apply.lua, claim.lua and apply_and_claim.lua (each says `--! uses lib_moves.lua`).

-- Write the updates in ARGV[o + 1] to the end, each: id, expected state, expected claim token,
-- and the values of the MUTABLE_NAMES in order (a token or value is "" for none, else "=" .. it).
-- Each is written only while the stored job is in the expected state under the expected token
-- (none: no token), and the job moves between the indexes of its old and new state. A write from
-- a running job that would run it again (scheduled or queued) without the cancel asked meanwhile
-- is refused too: the cancel is not lost, the rescue ends the job cancelled. All updates are
-- checked before the first write. Returns 1 or 0 per update, and whether a job became queued or
-- scheduled (workers to wake).
local function apply_updates(o)
    local names, at = MUTABLE_NAMES, positions(MUTABLE_NAMES)
    local width = #names + 3
    if (#ARGV - o) % width ~= 0 or not at.state or not at.cancel_requested then
        error("taskmill: malformed updates")
    end
    for base = o, #ARGV - 1, width do
        if not STATES[opt(ARGV[base + 3 + at.state])] then
            error("taskmill: the update of job " .. ARGV[base + 1] .. " is malformed")
        end
    end
    COUNT = {}
    local out, woke = {}, false
    for base = o, #ARGV - 1, width do
        local id, token = ARGV[base + 1], opt(ARGV[base + 3])
        local new_state = opt(ARGV[base + 3 + at.state])
        local f = read_job(id)
        local ok = f ~= nil and f.state == ARGV[base + 2] and f.claim_token == token
        if ok and f.state == "running" and (new_state == "queued" or new_state == "scheduled")
                and opt(ARGV[base + 3 + at.cancel_requested]) ~= "1" and f.cancel_requested == "1" then
            ok = false
        end
        if ok then
            state_remove(id, f)
            local set, del = {}, {}
            for j, name in ipairs(names) do
                local v = opt(ARGV[base + 3 + j])
                f[name] = v
                if v then
                    set[#set + 1] = name
                    set[#set + 1] = v
                else
                    del[#del + 1] = name
                end
            end
            if #set > 0 then redis.call("HSET", jkey(id), unpack(set)) end
            if #del > 0 then redis.call("HDEL", jkey(id), unpack(del)) end
            state_add(id, f)
            if f.state == "queued" or f.state == "scheduled" then woke = true end
        end
        out[#out + 1] = ok and 1 or 0
    end
    flush()
    return out, woke
end

-- Move up to `limit` queued jobs of the unpaused ones of `queues` (nil: every queue with queued
-- jobs, as the counters in K_STATS name them) to running, best first (priority, then
-- scheduled_at, then id) across the queues. Nothing is popped: each job moves from its queue's
-- zset to the running zset by lease expiry, its hash staying where it is. Returns the jobs.
local function claim_jobs(now, limit, worker, token, lease, queues)
    if queues == nil then
        queues = {}
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
end
