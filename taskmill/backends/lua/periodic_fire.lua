-- periodic_fire(ARGV = name, slot, the job's values in the order of NEW_NAMES)
-- If the task is on and its last slot is before `slot`: records `slot` and stores the job, in
-- this one script, so a slot fires once however many workers try. Returns the new id, or nil.
local name, slot = ARGV[1], ARGV[2]
local names, at, o = NEW_NAMES, positions(NEW_NAMES), 2
local why = check_new(at, o)
if why then return redis.error_reply("taskmill: periodic job: " .. why) end
local old = redis.call("HGET", K_PERIODIC, name)
if not old or string.sub(old, 1, 1) ~= "1" then return false end
local last = string.sub(old, 3)
if last ~= "" and tonumber(last) >= tonumber(slot) then return false end
redis.call("HSET", K_PERIODIC, name, "1:" .. slot)
local id = string.format("%d", redis.call("INCR", K_SEQ))
insert(names, o, id)
wake()
return id
