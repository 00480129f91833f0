-- wrk script for chatbridge's webhook: cycles through pre-signed bodies (each a new message id,
-- so nothing is a cheap duplicate) from the file named by BODIES; prints latency percentiles.
local bodies, signatures = {}, {}
local index = 0

function init(args)
  local path = os.getenv("BODIES")
  for line in io.lines(path) do
    local signature, body = line:match("^(%S+) (.*)$")
    signatures[#signatures + 1] = signature
    bodies[#bodies + 1] = body
  end
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = signatures[index],
  }, bodies[index])
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d errors=%d seconds=%.3f p50=%.3f p95=%.3f p99=%.3f\n",
    summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000
  ))
end
