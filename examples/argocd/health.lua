-- Argo CD health of a Turnstile resource (all five kinds), from the status Turnstile writes:
--   Healthy      Ready=True, for the object's current generation
--   Degraded     Ready=False: the object is left out of the index and denies where it applies
--   Progressing  no status yet, or a status for an older generation (not indexed yet)
-- Argo CD runs this with gopher-lua (Lua 5.1); tests/cluster.rs runs it with Debian's lua5.1.
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Turnstile to index this object"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Turnstile to index generation " .. tostring(generation)
  return hs
end
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    if condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = tostring(condition.reason) .. ": " .. tostring(condition.message)
    else
      hs.status = "Progressing"
      hs.message = condition.message
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
