-- query(ARGV = JSON filter {states, queue, task, owner, parent}, cursor, budget, wanted)
-- Looks at up to `budget` jobs of the filter's cheapest index past `cursor`, newest first, and
-- returns {last id looked at, 1 if the index may hold more, matching jobs...}, at most `wanted`.
local filter = cjson.decode(ARGV[1])
local cursor, budget, wanted = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local states = nil
if filter.states and #filter.states > 0 then
    states = {}
    for _, s in ipairs(filter.states) do states[s] = true end
end
local ids, more = scan(sources_for(filter), cursor, budget, true)
local out, last = {"", 0}, cursor
for _, id in ipairs(ids) do
    if #out - 2 >= wanted then
        more = true
        break
    end
    last = id
    local f = read_job(id)
    if f and (states == nil or states[f.state])
            and (type(filter.queue) ~= "string" or f.queue == filter.queue)
            and (type(filter.task) ~= "string" or f.task == filter.task)
            and (type(filter.owner) ~= "string" or f.owner == filter.owner)
            and (type(filter.parent) ~= "string" or f.parent == filter.parent) then
        out[#out + 1] = hgetall(id)
    end
end
out[1], out[2] = last, more and 1 or 0
return out
