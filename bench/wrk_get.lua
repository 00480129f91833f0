-- wrk script for a plain GET (the bare-view baseline): prints the same RESULT line.
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
