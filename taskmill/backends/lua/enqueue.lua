-- enqueue(ARGV = n, "1" if any job is unique else "0", then per job its unique mode ("",
-- "return" or "reschedule") and its values, in the order of NEW_NAMES)
-- All or none: every job is checked before the first write. A job with a unique mode returns
-- the lowest-id pending job of its unique_key instead of a new one ("reschedule" moves that
-- job's scheduled_at and state to the new job's). Returns per job its new id, or {matched job}.
local names, at, o = NEW_NAMES, positions(NEW_NAMES), 2
local k, n, any_unique = #NEW_NAMES, tonumber(ARGV[1]), ARGV[2] == "1"
if not n or #ARGV ~= o + n * (k + 1) then return redis.error_reply("taskmill: malformed batch") end
for i = 0, n - 1 do
    local why = check_new(at, o + i * (k + 1) + 1)
    if why then return redis.error_reply("taskmill: job " .. (i + 1) .. ": " .. why) end
end

-- A batch gathers its index entries and counts (see zadd); one job writes them straight away,
-- allocating less (garbage Redis's Lua must collect, a cost its timings do not show).
if n > 1 then BUF, COUNT = {}, {} end
local out, matched, woke = {}, {}, false
local first = 0
if not any_unique then first = redis.call("INCRBY", K_SEQ, n) - n end
for i = 1, n do
    local base = o + (i - 1) * (k + 1)
    local mode, match = ARGV[base + 1], nil
    local ukey = opt(ARGV[base + 1 + at.unique_key])
    if mode ~= "" and ukey then
        flush()  -- earlier jobs of this call count as pending too
        match = find_pending(ukey)
    end
    if match then
        if mode == "reschedule" then
            local f = read_job(match)
            state_remove(match, f)
            f.scheduled_at, f.state = ARGV[base + 1 + at.scheduled_at], ARGV[base + 1 + at.state]
            redis.call("HSET", jkey(match), "scheduled_at", f.scheduled_at, "state", f.state)
            state_add(match, f)
        end
        matched[#matched + 1] = i
        out[i] = match
    else
        local id
        if any_unique then
            id = string.format("%d", redis.call("INCR", K_SEQ))
        else
            id = string.format("%d", first + i)
        end
        insert(names, base + 1, id)
        out[i] = id
    end
end
flush()
for _, i in ipairs(matched) do out[i] = hgetall(out[i]) end
if n > 0 then wake() end
return out
