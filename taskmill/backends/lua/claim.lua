--! uses lib_moves.lua
-- claim(ARGV = now, limit, worker, token, lease_until, queue names... (none: every queue))
-- Returns the claimed jobs, best first.
local queues = nil
if #ARGV > 5 then queues = {unpack(ARGV, 6)} end
return claim_jobs(ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], queues)
