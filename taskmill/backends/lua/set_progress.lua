-- set_progress(ARGV = id, claim token, progress, message ("" none, else "=" .. message))
-- Applies only while the job runs under that token. Returns 1 if written.
local id, token, progress, message = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local v = redis.call("HMGET", jkey(id), "state", "claim_token")
if v[1] ~= "running" or v[2] ~= token then return 0 end
if message == "" then
    redis.call("HSET", jkey(id), "progress", progress)
    redis.call("HDEL", jkey(id), "progress_message")
else
    redis.call("HSET", jkey(id), "progress", progress, "progress_message", string.sub(message, 2))
end
return 1
