-- wrk script for chatbridge's benchmark. With BODIES naming a file of "<signature> <json>" lines
-- it POSTs them in turn to the webhook (each a new message id, so nothing is a cheap duplicate);
-- without, it sends wrk's plain GET (the bare-view baseline). Prints one RESULT line.
local bodies, signatures = {}, {}
local index = 0

function init(args)
  local path = os.getenv("BODIES")
  if path == nil or path == "" then
    return
  end
  for line in io.lines(path) do
    local signature, body = line:match("^(%S+) (.*)$")
    signatures[#signatures + 1] = signature
    bodies[#bodies + 1] = body
  end
end

function request()
  if #bodies == 0 then
    return wrk.format(nil)
  end
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
  -- The distribution, for the plot: one line per percentile.
  for _, p in ipairs({1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 99.5, 99.9}) do
    io.write(string.format("CDF %g %.3f\n", p, latency:percentile(p) / 1000))
  end
end
