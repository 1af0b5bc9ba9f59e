-- prune(ARGV = before, limit): deletes up to `limit` finished jobs that finished before
-- `before`, oldest first, with their logs. Returns how many.
local members = redis.call("ZRANGEBYSCORE", K_FIN, "-inf", "(" .. ARGV[1], "LIMIT", 0,
                          tonumber(ARGV[2]))
local n = 0
COUNT = {}
for _, member in ipairs(members) do
    local id = tmember_id(member)
    local f = read_job(id)
    if f and f.state ~= "running" and f.state ~= "queued" and f.state ~= "scheduled" then
        delete_job(id, f)
        n = n + 1
    else
        redis.call("ZREM", K_FIN, member)
    end
end
flush()
return n
