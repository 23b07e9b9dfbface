-- wrk script: replay pre-built HTTP requests from a file, each at most once per run.
--
-- REPLAY_FILE holds length-prefixed records ("<bytes>\n<raw request>"), written by
-- benchmarks/payloads.py. Thread k of n sends records k, k+n, k+2n, ... so no two threads
-- send the same request; a thread that runs out wraps around and counts it in `wrapped`
-- (the benchmark then reports duplicates instead of hiding them).
-- At the end one JSON line with the totals and the status counts is printed.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("REPLAY_THREADS") or "1")
  local file = assert(io.open(os.getenv("REPLAY_FILE"), "rb"))
  local data = file:read("*a")
  file:close()
  requests = {}
  local pos, index = 1, 0
  while pos <= #data do
    local newline = string.find(data, "\n", pos, true)
    local size = tonumber(string.sub(data, pos, newline - 1))
    if index % nthreads == id then
      table.insert(requests, string.sub(data, newline + 1, newline + size))
    end
    index = index + 1
    pos = newline + 1 + size
  end
  data = nil
  accepted, duplicate, other, wrapped = 0, 0, 0, 0
end

function request()
  if counter > #requests then
    counter = 1
    wrapped = wrapped + 1
  end
  local r = requests[counter]
  counter = counter + 1
  return r
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  elseif status == 200 then
    duplicate = duplicate + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, d, o, w = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    d = d + t:get("duplicate")
    o = o + t:get("other")
    w = w + t:get("wrapped")
  end
  local errors = summary.errors
  io.write(string.format(
    'REPLAY_RESULT {"requests": %d, "duration_us": %d, "accepted": %d, "duplicate": %d,' ..
    ' "other": %d, "wrapped": %d, "connect_errors": %d, "read_errors": %d,' ..
    ' "write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, a, d, o, w, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(99)))
end
