-- Runs health.lua against sample objects: lua5.4 deploy/argocd/health_test.lua
local dir = arg[0]:match("(.*/)") or "./"
local source = assert(io.open(dir .. "health.lua")):read("a")

local function check(obj)
  local env = setmetatable({ obj = obj }, { __index = _G })
  return assert(load(source, "health.lua", "t", env))()
end

local function cond(t, s, reason, msg)
  return { type = t, status = s, reason = reason, message = msg }
end

local failures, passed = 0, 0
local function expect(name, obj, status, message_part)
  local hs = check(obj)
  if hs.status ~= status or (message_part and not hs.message:find(message_part, 1, true)) then
    failures = failures + 1
    print("FAIL " .. name .. ": got " .. hs.status .. " / " .. tostring(hs.message))
  else
    passed = passed + 1
    print("ok   " .. name)
  end
end

expect("no status", { metadata = { generation = 1 } }, "Progressing")
expect("ready", { metadata = { generation = 2 }, status = { observedGeneration = 2, conditions = {
  cond("Ready", "True", "Synced", "in sync") } } },
  "Healthy", "in sync")
-- As earlier credsync builds wrote it: Reconciling and Stalled present with status False.
expect("ready, false conditions written out", { metadata = { generation = 2 }, status = { observedGeneration = 2, conditions = {
  cond("Ready", "True", "Synced", "in sync"), cond("Reconciling", "False", "Idle", ""), cond("Stalled", "False", "Healthy", "") } } },
  "Healthy", "in sync")
expect("stale generation", { metadata = { generation = 3 }, status = { observedGeneration = 2, conditions = {
  cond("Ready", "True", "Synced", "in sync") } } }, "Progressing", "latest spec")
expect("stalled", { metadata = { generation = 1 }, status = { observedGeneration = 1, conditions = {
  cond("Ready", "False", "SecretNotFound", "Secret a/b not found"), cond("Stalled", "True", "SecretNotFound", "Secret a/b not found") } } },
  "Degraded", "SecretNotFound")
expect("paused, out of sync", { metadata = { generation = 2 }, status = { observedGeneration = 2, conditions = {
  cond("Ready", "False", "Paused", "credsync.io/paused is \"true\"") } } },
  "Suspended", "Paused")
expect("paused, in sync", { metadata = { generation = 2 }, status = { observedGeneration = 2, conditions = {
  cond("Ready", "True", "Paused", "credsync.io/paused is \"true\"") } } },
  "Healthy")
expect("retrying", { metadata = { generation = 1 }, status = { observedGeneration = 1, conditions = {
  cond("Ready", "False", "VendorUnavailable", "503"), cond("Reconciling", "True", "VendorUnavailable", "503 (retrying with backoff)") } } },
  "Progressing", "retrying")
print(string.format("%d passed, %d failed", passed, failures))
os.exit(failures == 0 and 0 or 1)
