-- apply(ARGV[1] = JSON list of the mutable field names, ARGV[2] = JSON list of updates, each
-- [id, expected state, expected claim token or null, value of each field or null])
-- Each update is written only while the stored job is in the expected state under the expected
-- token (none: no token), and the job moves between the indexes of its old and new state. A
-- write from a running job that would run it again (scheduled or queued) without the cancel
-- asked meanwhile is refused too: the cancel is not lost, the rescue ends the job cancelled.
-- Returns 1 or 0 per update, then 1 if workers were woken (a job became queued or scheduled).
local names = cjson.decode(ARGV[1])
local updates = cjson.decode(ARGV[2])
local state_at, cancel_at = 0, 0
for i, name in ipairs(names) do
    if name == "state" then state_at = i + 3 end
    if name == "cancel_requested" then cancel_at = i + 3 end
end
for i, u in ipairs(updates) do
    if type(u) ~= "table" or #u ~= #names + 3 or not STATES[u[state_at]] then
        return redis.error_reply("taskmill: update " .. i .. " is malformed")
    end
end

local out, woke = {}, false
for i, u in ipairs(updates) do
    local id, token = u[1], u[3]
    local f = read_job(id)
    local ok = f ~= nil and f.state == u[2]
    if ok then
        if token == NULL then ok = not f.claim_token else ok = f.claim_token == token end
    end
    if ok and f.state == "running" and (u[state_at] == "queued" or u[state_at] == "scheduled")
            and u[cancel_at] ~= "1"
            and redis.call("HGET", jkey(id), "cancel_requested") == "1" then
        ok = false
    end
    if ok then
        state_remove(id, f)
        local set, del = {}, {}
        for j, name in ipairs(names) do
            local v = u[3 + j]
            if v == NULL then
                del[#del + 1] = name
                f[name] = false
            else
                set[#set + 1] = name
                set[#set + 1] = v
                f[name] = v
            end
        end
        if #set > 0 then redis.call("HSET", jkey(id), unpack(set)) end
        if #del > 0 then redis.call("HDEL", jkey(id), unpack(del)) end
        state_add(id, f)
        if f.state == "queued" or f.state == "scheduled" then woke = true end
    end
    out[i] = ok and 1 or 0
end
if woke then wake() end
out[#out + 1] = woke and 1 or 0
return out
