-- periodic_fire(ARGV = name, slot, JSON list of field names, JSON row of the job's values)
-- If the task is on and its last slot is before `slot`: records `slot` and stores the job, in
-- this one script, so a slot fires once however many workers try. Returns the new id, or nil.
local name, slot = ARGV[1], ARGV[2]
local old = redis.call("HGET", K_PERIODIC, name)
if not old or string.sub(old, 1, 1) ~= "1" then return false end
local last = string.sub(old, 3)
if last ~= "" and tonumber(last) >= tonumber(slot) then return false end
local names, row = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local why = check_row(names, row, 0)
if why then return redis.error_reply("taskmill: periodic job: " .. why) end
redis.call("HSET", K_PERIODIC, name, "1:" .. slot)
local id = insert(names, row, 0)
wake()
return id
