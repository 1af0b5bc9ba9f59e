-- delete(ARGV = id): deletes a job that is not running, with its logs. Returns 1 if deleted.
local id = ARGV[1]
local f = read_job(id)
if f == nil or f.state == "running" then return 0 end
delete_job(id, f)
return 1
