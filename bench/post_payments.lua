-- wrk script: POST form-encoded payments with a bearer key, round-robin over the given users.
--
--   wrk -t2 -c16 -d3600s -s bench/post_payments.lua URL -- KEY LIMIT SLOW_EVERY DONE_DIR USER_ID...
--
-- KEY: the API key (sent as "Authorization: Bearer KEY"). LIMIT: responses per wrk thread after
-- which the thread stops and writes DONE_DIR/<thread id> (0 = run for the whole -d). SLOW_EVERY:
-- every n-th request of a thread pays 1.57 (the sandbox's slow magic amount), the rest 1.00
-- (0 = none). done() prints one line "BENCH_JSON {...}" with the totals and latency percentiles.

local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  key = args[1]
  limit = tonumber(args[2])
  slow_every = tonumber(args[3])
  done_dir = args[4]
  users = {}
  for i = 5, #args do
    users[#users + 1] = args[i]
  end
  sent = 0
  answered = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  sent = sent + 1
  local user = users[(sent * 7 + id) % #users + 1]
  local amount = "1.00"
  if slow_every > 0 and sent % slow_every == 0 then
    amount = "1.57"
  end
  return wrk.format(nil, nil, nil, "user_id=" .. user .. "&amount=" .. amount)
end

function response(status, headers, body)
  answered = answered + 1
  if limit > 0 and answered == limit then
    local marker = io.open(done_dir .. "/" .. id, "w")
    marker:write(tostring(answered))
    marker:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "non_2xx_3xx": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
