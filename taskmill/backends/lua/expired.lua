-- expired(ARGV = now, limit): running jobs whose lease ran out before `now`, earliest first.
local members = redis.call("ZRANGEBYSCORE", K_RUN, "-inf", "(" .. ARGV[1], "LIMIT", 0,
                          tonumber(ARGV[2]))
local out = {}
for _, member in ipairs(members) do
    local job = hgetall(tmember_id(member))
    if #job > 0 then out[#out + 1] = job end
end
return out
