--! uses lib_moves.lua
-- apply(ARGV = the updates, as apply_updates reads them)
-- Returns 1 or 0 per update (written or not), then 1 if workers were woken.
local out, woke = apply_updates(0)
if woke then wake() end
out[#out + 1] = woke and 1 or 0
return out
