-- append_logs(ARGV = job id and JSON log line pairs)
-- Appends each line to its job's log list; a line of a job that is gone is dropped with it.
local exists = {}
for i = 1, #ARGV, 2 do
    local id = ARGV[i]
    if exists[id] == nil then exists[id] = redis.call("EXISTS", jkey(id)) == 1 end
    if exists[id] then redis.call("RPUSH", lkey(id), ARGV[i + 1]) end
end
return 0
