-- wrk script: POST pre-signed HCP Terraform notifications, each a distinct state change.
-- Usage: wrk ... -s intake.lua URL -- POOL_FILE
-- POOL_FILE has one delivery per line: "<hex HMAC-SHA512 signature>\t<JSON body>". Thread k of n sends
-- lines k, k+n, k+2n, ... so no two threads send the same delivery; a thread that runs out starts over
-- (those repeats are answered 200 "duplicate" and counted separately).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local n = counter
  if n == 0 then n = 1 end
  pool = {}
  local i = 0
  for line in io.lines(path) do
    if i % n == id then
      local tab = string.find(line, "\t", 1, true)
      local sig = string.sub(line, 1, tab - 1)
      local body = string.sub(line, tab + 1)
      table.insert(pool, wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["X-TFE-Notification-Signature"] = sig,
      }, body))
    end
    i = i + 1
  end
  nxt = 1
  s202, s200, sother = 0, 0, 0
end

function request()
  local r = pool[nxt]
  nxt = nxt + 1
  if nxt > #pool then nxt = 1 end
  return r
end

function response(status, headers, body)
  if status == 202 then
    s202 = s202 + 1
  elseif status == 200 then
    s200 = s200 + 1
  else
    sother = sother + 1
  end
end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s202")
    b = b + t:get("s200")
    c = c + t:get("sother")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_202":%d,"status_200":%d,"status_other":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, a, b, c,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
