-- delete_where(ARGV = JSON filter {states, task, queue, args, kwargs}, cursor, budget, count)
-- Looks at up to `budget` jobs of the filter's cheapest index past `cursor`, oldest first, and
-- deletes those that match (never a running one), at most `count` (-1: no limit).
-- Returns {deleted, last id looked at, 1 if the index may hold more}.
local filter = cjson.decode(ARGV[1])
local cursor, budget, left = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local states = {}
for _, s in ipairs(filter.states) do states[s] = true end
local ids, more = scan(sources_for(filter), cursor, budget, false)
local deleted, last = 0, cursor
COUNT = {}
for _, id in ipairs(ids) do
    if left == 0 then
        more = true
        break
    end
    last = id
    local f = read_job(id)
    if f and states[f.state] and f.state ~= "running"
            and (type(filter.task) ~= "string" or f.task == filter.task)
            and (type(filter.queue) ~= "string" or f.queue == filter.queue) then
        local ok = true
        if type(filter.args) == "string" or type(filter.kwargs) == "string" then
            local v = redis.call("HMGET", jkey(id), "args", "kwargs")
            ok = (type(filter.args) ~= "string" or v[1] == filter.args)
                 and (type(filter.kwargs) ~= "string" or v[2] == filter.kwargs)
        end
        if ok then
            delete_job(id, f)
            deleted = deleted + 1
            left = left - 1
        end
    end
end
flush()
return {deleted, last, more and 1 or 0}
