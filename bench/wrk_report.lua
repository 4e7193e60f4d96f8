-- Prints one machine-readable line after a wrk run (used by bench/*.sh):
-- RESULT requests duration_us req_per_s p50_us p99_us max_us errors non_2xx_3xx bytes
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format("RESULT %d %d %.1f %d %d %d %d %d %d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max, errors, e.status, summary.bytes))
end
