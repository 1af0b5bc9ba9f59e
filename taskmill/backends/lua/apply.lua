-- apply(ARGV = per update: id, expected state, expected claim token, and the values of the
-- MUTABLE_NAMES in order; a token or value is "" for none, else "=" .. it)
-- Each update is written only while the stored job is in the expected state under the expected
-- token (none: no token), and the job moves between the indexes of its old and new state. A
-- write from a running job that would run it again (scheduled or queued) without the cancel
-- asked meanwhile is refused too: the cancel is not lost, the rescue ends the job cancelled.
-- Returns 1 or 0 per update, then 1 if workers were woken (a job became queued or scheduled).
local names, at, o = MUTABLE_NAMES, positions(MUTABLE_NAMES), 0
local k = #names
local width = k + 3
if (#ARGV - o) % width ~= 0 or not at.state or not at.cancel_requested then
    return redis.error_reply("taskmill: malformed updates")
end
for base = o, #ARGV - 1, width do
    if not STATES[opt(ARGV[base + 3 + at.state])] then
        return redis.error_reply("taskmill: update of job " .. ARGV[base + 1] .. " is malformed")
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
if woke then wake() end
out[#out + 1] = woke and 1 or 0
return out
