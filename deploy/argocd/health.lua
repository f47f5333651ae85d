-- Argo CD health check for every credsync.io kind (kstatus conditions).
-- Ready=True for the current generation: Healthy. Stalled=True: Degraded (a person is needed).
-- Paused (credsync.io/paused) and not in sync: Suspended.
-- Otherwise (not yet observed, reconciling, retrying): Progressing.
local hs = { status = "Progressing", message = "Waiting for credsync to reconcile" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if obj.status.observedGeneration ~= nil and generation ~= nil and obj.status.observedGeneration < generation then
  hs.message = "credsync has not yet seen the latest spec"
  return hs
end
local ready, stalled, reconciling
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" then stalled = c end
  if c.type == "Reconciling" then reconciling = c end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "") .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
-- Paused on purpose while its spec or a Secret changed: nothing runs and nothing is wrong.
if ready ~= nil and ready.status == "False" and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused: " .. (ready.message or "")
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = (reconciling.reason or "") .. ": " .. (reconciling.message or "")
elseif ready ~= nil then
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
end
return hs
