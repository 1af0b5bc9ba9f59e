-- Shared by every script of the Redis backend: prepended to each one before SCRIPT LOAD.
--
-- KEYS[1] is the installation's key prefix, "{name}:". Every key below starts with it, so all of
-- them hash to the one Redis Cluster slot that KEYS[1] names. The layout is in docs/redis.md.
-- Times are whole microseconds since the epoch, kept as decimal strings: Lua numbers are doubles
-- and print in exponent form past 1e14, so scripts compare them but never print them.

local P = KEYS[1]
local K_SEQ = P .. "seq"
local K_SCHED, K_RUN, K_FIN = P .. "scheduled", P .. "running", P .. "finished"
local K_PENDING, K_STATS, K_PAUSED = P .. "pending", P .. "stats", P .. "paused"
local K_PERIODIC, K_WAKE = P .. "periodic", P .. "wake"
local STATES = {scheduled = true, queued = true, running = true, succeeded = true, failed = true,
                cancelled = true}
local STATE_LIST = {"scheduled", "queued", "running", "succeeded", "failed", "cancelled"}

-- Values that may be none travel as "" (none) or "=" .. value.
local function opt(v)
    if v == "" then return false end
    return string.sub(v, 2)
end

local function jkey(id) return P .. "job:" .. id end
local function lkey(id) return P .. "log:" .. id end
local function qkey(queue) return P .. "q:" .. queue end
local function skey(state) return P .. "s:" .. state end
local function ikey(kind, value) return P .. "i:" .. kind .. ":" .. value end

local function pad(s, width)
    if #s >= width then return s end
    return string.rep("0", width - #s) .. s
end

-- A queued job's member in its queue's zset. The score is -priority; members of one score sort
-- by bytes, so padding makes that scheduled_at, then id: FIFO within a priority.
local function qmember(scheduled_at, id) return pad(scheduled_at, 18) .. ":" .. pad(id, 20) end
local function qmember_id(member) return string.match(member, ":0*(%d+)$") end
local function negate(n)
    if string.sub(n, 1, 1) == "-" then return string.sub(n, 2) end
    return "-" .. n
end

-- A job's member in the zsets by time (scheduled, running, finished): its id padded, so jobs of
-- one time sort by id, as they do everywhere else.
local function tmember(id) return pad(id, 20) end
local function tmember_id(member) return string.match(member, "^0*(%d+)$") end

-- A pending (scheduled or queued) job's member in K_PENDING, by unique key then id: the lowest
-- id of a key is the first member of its lexicographic range.
local function umember(ukey, id) return ukey .. "|" .. pad(id, 20) end

local function find_pending(ukey)
    local found = redis.call("ZRANGEBYLEX", K_PENDING, "[" .. ukey .. "|", "(" .. ukey .. "}",
                             "LIMIT", 0, 1)
    local m = found[1]
    if m and #m == #ukey + 21 then return string.match(m, "|0*(%d+)$") end
    return nil
end

-- The fields the indexes are built from; a missing one reads as false.
local F = {"state", "queue", "priority", "scheduled_at", "lease_until", "finished_at",
           "unique_key", "claim_token", "task", "owner", "parent", "attempts", "cancel_requested"}

local function read_job(id)
    local v = redis.call("HMGET", jkey(id), unpack(F))
    if not v[1] then return nil end
    local f = {}
    for i, name in ipairs(F) do f[name] = v[i] end
    return f
end

local function hgetall(id) return redis.call("HGETALL", jkey(id)) end

-- Index additions go through zadd(): straight to Redis, or, while BUF is a table (a bulk
-- enqueue), gathered per key and written by flush() in a few variadic ZADDs. COUNT does the same
-- for the per queue and state counters (sums commute, so any script may gather them).
local BUF, COUNT = nil, nil

local function zadd(key, score, member)
    if BUF == nil then return redis.call("ZADD", key, score, member) end
    local buf = BUF[key]
    if buf == nil then
        buf = {}
        BUF[key] = buf
    end
    buf[#buf + 1] = score
    buf[#buf + 1] = member
end

local function add_count(field, d)
    if redis.call("HINCRBY", K_STATS, field, d) <= 0 then redis.call("HDEL", K_STATS, field) end
end

local function count(queue, state, d)
    local field = state .. ":" .. queue
    if COUNT == nil then return add_count(field, d) end
    COUNT[field] = (COUNT[field] or 0) + d
end

local function flush()
    if BUF ~= nil then
        for key, buf in pairs(BUF) do
            for i = 1, #buf, 4000 do  -- an even step keeps score/member pairs together
                redis.call("ZADD", key, unpack(buf, i, math.min(i + 3999, #buf)))
            end
        end
        BUF = {}
    end
    if COUNT ~= nil then
        for field, d in pairs(COUNT) do
            if d ~= 0 then add_count(field, d) end
        end
        COUNT = {}
    end
end

-- The indexes of a job's state: its state set and counter, the queue zset (queued), the time
-- zsets (scheduled, running, finished), the unique index (pending).
local function state_add(id, f)
    local s = f.state
    zadd(skey(s), id, id)
    count(f.queue, s, 1)
    if s == "queued" then
        zadd(qkey(f.queue), negate(f.priority), qmember(f.scheduled_at, id))
    elseif s == "scheduled" then
        zadd(K_SCHED, f.scheduled_at, tmember(id))
    elseif s == "running" then
        zadd(K_RUN, f.lease_until or "+inf", tmember(id))
    elseif f.finished_at then
        zadd(K_FIN, f.finished_at, tmember(id))
    end
    if (s == "queued" or s == "scheduled") and f.unique_key then
        zadd(K_PENDING, 0, umember(f.unique_key, id))
    end
end

local function state_remove(id, f)
    local s = f.state
    redis.call("ZREM", skey(s), id)
    count(f.queue, s, -1)
    if s == "queued" then
        redis.call("ZREM", qkey(f.queue), qmember(f.scheduled_at, id))
    elseif s == "scheduled" then
        redis.call("ZREM", K_SCHED, tmember(id))
    elseif s == "running" then
        redis.call("ZREM", K_RUN, tmember(id))
    else
        redis.call("ZREM", K_FIN, tmember(id))
    end
    if (s == "queued" or s == "scheduled") and f.unique_key then
        redis.call("ZREM", K_PENDING, umember(f.unique_key, id))
    end
end

-- The indexes of what never changes: jobs by queue, task, owner and parent. (All jobs are the
-- union of the state sets.)
local function static_add(id, f)
    zadd(ikey("queue", f.queue), id, id)
    zadd(ikey("task", f.task), id, id)
    if f.owner then zadd(ikey("owner", f.owner), id, id) end
    if f.parent then zadd(ikey("parent", f.parent), id, id) end
end

local function static_remove(id, f)
    redis.call("ZREM", ikey("queue", f.queue), id)
    redis.call("ZREM", ikey("task", f.task), id)
    if f.owner then redis.call("ZREM", ikey("owner", f.owner), id) end
    if f.parent then redis.call("ZREM", ikey("parent", f.parent), id) end
end

-- A new job's values are ARGV[o + 1] ... ARGV[o + #names], one per name of `names` (the fields
-- a new job is stored with); unique_key, owner and parent may be none.
local NEW_OPTIONAL = {unique_key = true, owner = true, parent = true}

-- Store a new job under `id` and index it.
local function insert(names, o, id)
    local h, f = {"id", id}, {}
    for i, name in ipairs(names) do
        local v = ARGV[o + i]
        if NEW_OPTIONAL[name] then v = opt(v) end
        f[name] = v
        if v then
            h[#h + 1] = name
            h[#h + 1] = v
        end
    end
    redis.call("HSET", jkey(id), unpack(h))
    static_add(id, f)
    state_add(id, f)
    return f.state
end

-- Check a new job's values before anything is written; nil if well formed, else why not.
local function check_new(at, o)
    local state, queue, task = ARGV[o + at.state], ARGV[o + at.queue], ARGV[o + at.task]
    if not STATES[state] then return "unknown state " .. tostring(state) end
    if not queue or queue == "" then return "no queue" end
    if not task or task == "" then return "no task" end
    if not tonumber(ARGV[o + at.priority]) or not tonumber(ARGV[o + at.scheduled_at]) then
        return "priority and scheduled_at must be numbers"
    end
    return nil
end

-- The fields of a new job as `enqueue` sends them, and the mutable fields as `apply` sends them,
-- in order: taskmill/backends/redis.py fills these lists in when it loads the scripts.
local NEW_NAMES = {--[[NEW_FIELDS]]}
local MUTABLE_NAMES = {--[[MUTABLE_FIELDS]]}

local function positions(names)
    local at = {}
    for i, name in ipairs(names) do at[name] = i end
    return at
end

local function delete_job(id, f)
    state_remove(id, f)
    static_remove(id, f)
    redis.call("DEL", jkey(id), lkey(id))
end

-- Up to `budget` ids of `sources` (zsets scored by id) past `cursor` ("" = from the start), in
-- order (newest first if `desc`), and whether the sources may hold more past the last one.
local function scan(sources, cursor, budget, desc)
    local ids, full = {}, false
    for _, key in ipairs(sources) do
        local r
        if desc then
            r = redis.call("ZREVRANGEBYSCORE", key, cursor == "" and "+inf" or "(" .. cursor, "-inf",
                           "LIMIT", 0, budget)
        else
            r = redis.call("ZRANGEBYSCORE", key, cursor == "" and "-inf" or "(" .. cursor, "+inf",
                           "LIMIT", 0, budget)
        end
        if #r >= budget then full = true end
        for _, id in ipairs(r) do ids[#ids + 1] = id end
    end
    if #sources > 1 then
        if desc then
            table.sort(ids, function(a, b) return tonumber(a) > tonumber(b) end)
        else
            table.sort(ids, function(a, b) return tonumber(a) < tonumber(b) end)
        end
    end
    local out = {}
    for i = 1, math.min(budget, #ids) do out[i] = ids[i] end
    return out, full or #ids > budget
end

-- The cheapest index to scan for a filter: the union of its states' sets, or the index of one
-- of its other fields, whichever holds fewest ids; all jobs when nothing narrows it.
local function sources_for(filter)
    local states = STATE_LIST
    if filter.states and #filter.states > 0 then states = filter.states end
    local best, size = {}, 0
    for _, s in ipairs(states) do
        best[#best + 1] = skey(s)
        size = size + redis.call("ZCARD", skey(s))
    end
    for _, kind in ipairs({"queue", "task", "owner", "parent"}) do
        local value = filter[kind]
        if type(value) == "string" then
            local n = redis.call("ZCARD", ikey(kind, value))
            if n <= size then best, size = {ikey(kind, value)}, n end
        end
    end
    return best
end

local function wake() redis.call("PUBLISH", K_WAKE, "1") end
