--! uses lib_moves.lua
-- apply_and_claim(ARGV = now, limit, worker, token, lease_until, number of queue names (-1:
-- every queue), the queue names, then the updates as apply_updates reads them)
-- A worker's finished jobs written and its next jobs claimed in one script, one round trip:
-- apply, then claim, each guarded as when alone. Returns {1 or 0 per update, 1 if workers were
-- woken, the claimed jobs}.
local n = tonumber(ARGV[6])
local queues = nil
if n >= 0 then queues = {unpack(ARGV, 7, 6 + n)} end
local applied, woke = apply_updates(6 + math.max(n, 0))
if woke then wake() end
local jobs = {}
local limit = tonumber(ARGV[2])
if limit > 0 then jobs = claim_jobs(ARGV[1], limit, ARGV[3], ARGV[4], ARGV[5], queues) end
return {applied, woke and 1 or 0, jobs}
