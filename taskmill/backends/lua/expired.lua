-- expired(ARGV = now, limit): running jobs whose lease ran out before `now`, earliest first.
local ids = redis.call("ZRANGEBYSCORE", K_RUN, "-inf", "(" .. ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
    local job = hgetall(id)
    if #job > 0 then out[#out + 1] = job end
end
return out
