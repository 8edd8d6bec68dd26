-- Call latency (bench/flows.py): k cycles over 100 keys, body 1, W1's shape
-- (wrk -t1 -c1 -d20s after a 5 s warm-up run), against bench.flowapp:application.
--   mode "call"   (default): POST {base}/Caller/{k}/call, which calls Counter/{k}/add
--   mode "direct":           POST {base}/Counter/{k}/add, the floor of the call
-- Usage: wrk -t1 -c1 -d20s -s bench/flow_call.lua http://127.0.0.1:8080 -- call
-- The base URL (and an optional path prefix) comes from wrk's command line.
local NKEYS = 100
local PATHS = { call = "/Caller/k%d/call", direct = "/Counter/k%d/add" }

local prefix = (wrk.path or "/"):gsub("/+$", "")
local next_id, threads = 0, {}
function setup(thread)
  thread:set("thread_id", next_id); next_id = next_id + 1
  table.insert(threads, thread)
end

local reqs, i = {}, 0
function init(args)
  mode = args[1] or "call"   -- a global: done() reads it through the thread
  local path = PATHS[mode]
  if not path then error("unknown mode " .. mode .. " (call or direct)") end
  local headers = { ["Content-Type"] = "application/json" }
  for k = 0, NKEYS - 1 do
    reqs[k] = wrk.format("POST", prefix .. string.format(path, k), headers, "1")
  end
  i = (thread_id or 0) * math.floor(NKEYS / 2)   -- threads start at different key offsets
end
function request() local r = reqs[i % NKEYS]; i = i + 1; return r end

-- done() runs in the main script state, which never saw init's arguments: the mode
-- comes from a thread's state (as in wrk's scripts/setup.lua).
function done(summary, latency, requests)
  local name = "flow_" .. (threads[1]:get("mode") or "call")
  local e = summary.errors
  local secs = summary.duration / 1e6
  -- non2xx = responses with status >= 400 (wrk's errors.status); ok2xx = requests - non2xx
  io.write(string.format(
    "RESULT %s p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f max_ms=%.3f rps=%.1f requests=%d ok2xx=%d non2xx=%d sock_err=%d/%d/%d/%d\n",
    name, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, summary.requests / secs, summary.requests,
    summary.requests - e.status, e.status, e.connect, e.read, e.write, e.timeout))
end
