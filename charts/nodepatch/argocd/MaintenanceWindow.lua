-- Argo CD health check for nodepatch.dev/MaintenanceWindow (docs/gitops.md). It reads the conditions the
-- controller (or, for reports, the node's agent) writes, as kstatus does: a spec change not
-- yet observed or Reconciling=True is Progressing (Suspended when the reason is Suspended),
-- Stalled=True is Degraded, otherwise Healthy (Suspended when spec.suspend is set). Lua 5.1 (Argo CD's gopher-lua).
local kind = "MaintenanceWindow"
local hs = {}
local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end
local function says(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe the " .. kind
  return hs
end
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
  return hs
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  if reconciling.reason == "Suspended" then
    hs.status = "Suspended"
  else
    hs.status = "Progressing"
  end
  hs.message = says(reconciling)
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status ~= "True" then
  -- Not written by this version's controller (it pairs Ready=False with Stalled or
  -- Reconciling); kstatus reads it as in progress too.
  hs.status = "Progressing"
  hs.message = says(ready)
  return hs
end
if ready ~= nil and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = says(ready)
  return hs
end
hs.status = "Healthy"
if ready ~= nil then
  hs.message = says(ready)
else
  hs.message = kind .. " is current"
end
local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.message = hs.message .. "; " .. says(degraded)
end
return hs
