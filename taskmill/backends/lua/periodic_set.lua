-- periodic_set(ARGV = name, "1" on or "0" off, slot)
-- On from off (or new): starts after `slot`. Off: keeps its last slot. Entries are
-- "<1|0>:<last slot or empty>".
local name, enabled, slot = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call("HGET", K_PERIODIC, name)
if enabled == "1" then
    if not (old and string.sub(old, 1, 1) == "1") then
        redis.call("HSET", K_PERIODIC, name, "1:" .. slot)
    end
elseif old then
    redis.call("HSET", K_PERIODIC, name, "0:" .. string.sub(old, 3))
else
    redis.call("HSET", K_PERIODIC, name, "0:" .. slot)
end
return 0
