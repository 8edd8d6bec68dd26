-- HTTP floor: the W1 request shape (POST /Cart/k{0..99}/add, JSON body "item-1") sent to
-- bench/hello_asgi.py, which answers every path with a small JSON body.
-- Shape: the same as W1 (wrk -t1 -c1 -d20s after a 5 s warm-up). RESULT line as in ../shared/bench.
local NAME, NKEYS = "floor_http", 100

local prefix = (wrk.path or "/"):gsub("/+$", "")
local reqs, i = {}, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for k = 0, NKEYS - 1 do
    reqs[k] = wrk.format("POST", prefix .. "/Cart/k" .. k .. "/add", headers, '"item-1"')
  end
end
function request() local r = reqs[i % NKEYS]; i = i + 1; return r end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT %s p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f max_ms=%.3f rps=%.1f requests=%d ok2xx=%d non2xx=%d sock_err=%d/%d/%d/%d\n",
    NAME, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, summary.requests / secs, summary.requests,
    summary.requests - e.status, e.status, e.connect, e.read, e.write, e.timeout))
end
