-- enqueue(ARGV[1] = JSON list of field names, ARGV[2] = JSON list of jobs, each
-- [unique mode ("", "return", "reschedule"), value of each field or null])
-- All or none: every row is checked before the first write. A job with a unique mode returns
-- the lowest-id pending job of its unique_key instead of a new one ("reschedule" moves that
-- job's scheduled_at and state to the new job's). Returns per job its new id, or {matched job}.
local names = cjson.decode(ARGV[1])
local jobs = cjson.decode(ARGV[2])
local pos = {}
for i, name in ipairs(names) do pos[name] = i + 1 end
for i, row in ipairs(jobs) do
    if type(row) ~= "table" or #row ~= #names + 1 or type(row[1]) ~= "string" then
        return redis.error_reply("taskmill: job " .. i .. " is malformed")
    end
    local why = check_row(names, row, 1)
    if why then return redis.error_reply("taskmill: job " .. i .. ": " .. why) end
end

BUF, COUNT = {}, {}
local out, matched = {}, {}
for i, row in ipairs(jobs) do
    local mode, ukey = row[1], row[pos.unique_key]
    local match = nil
    if mode ~= "" and ukey ~= NULL then
        flush()  -- earlier jobs of this call count as pending too
        match = find_pending(ukey)
    end
    if match then
        if mode == "reschedule" then
            local f = read_job(match)
            state_remove(match, f)
            f.scheduled_at, f.state = row[pos.scheduled_at], row[pos.state]
            redis.call("HSET", jkey(match), "scheduled_at", f.scheduled_at, "state", f.state)
            state_add(match, f)
        end
        matched[#matched + 1] = i
        out[i] = match
    else
        out[i] = insert(names, row, 1)
    end
end
flush()
for _, i in ipairs(matched) do out[i] = hgetall(out[i]) end
if #out > 0 then wake() end
return out
