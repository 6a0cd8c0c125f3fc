#!/usr/bin/env bash
# Soak test: MINUTES (default 30) of steady load mixing normal, streaming,
# refused (bad key) and malformed requests against the harness's
# fixed-response upstream (run ../shared/bench/setup.sh once). Prints, per
# minute: requests/s, latency percentiles, status classes (5xx must stay 0)
# and the gateway's RSS (must stop growing after warm-up).
#   bench/soak.sh [MINUTES] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}; CONNS=${2:-32}; SECS=60
source bench/lib.sh
start_upstream $((MINUTES * 60 + 180))
DATA=/tmp/assisters-bench/soak-data
# The refused requests all come from 127.0.0.1: without this the failed-auth
# throttle would (rightly) refuse that address's good requests too.
export ASSISTERS_ACCESS__AUTH_FAILURES_PER_MIN=1000000000
start_gateway "$DATA"
"$BIN" --data-dir "$DATA" keys create --name soak --tier bench --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/soak-key.txt"
cat >"$OUT/soak.lua" <<'LUA'
local key = io.open(os.getenv("KEY_FILE")):read("*l")
local json = '{"model":"mock","messages":[{"role":"user","content":"Summarize: measurement discipline matters."}],"max_tokens":64}'
local stream = '{"model":"mock","stream":true,"messages":[{"role":"user","content":"Stream a short answer."}],"max_tokens":64}'
local kinds = {
  {key, json}, {key, json}, {key, json}, {key, stream}, {key, stream},
  {"ask_not_a_real_key_000000000000", json},   -- refused: 401
  {key, '{"model":"mock","messages":[ oops'},   -- malformed: 400
}
local i = 0
c2, c4, c5, other = 0, 0, 0, 0
local threads = {}
setup = function(thread) table.insert(threads, thread) end
request = function()
  i = i % #kinds + 1
  local k = kinds[i]
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. k[1]}, k[2])
end
response = function(status, headers, body)
  if status >= 500 then c5 = c5 + 1 elseif status >= 400 then c4 = c4 + 1
  elseif status >= 200 and status < 300 then c2 = c2 + 1 else other = other + 1 end
end
done = function(summary, latency, requests)
  local t2, t4, t5, to = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    t2 = t2 + t:get("c2"); t4 = t4 + t:get("c4"); t5 = t5 + t:get("c5"); to = to + t:get("other")
  end
  io.write(string.format("rps=%.0f p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms 2xx=%d 4xx=%d 5xx=%d other=%d sockerr=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, t2, t4, t5, to,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
echo "minute  rss_mb  result"
for m in $(seq "$MINUTES"); do
  line=$(KEY_FILE="$OUT/soak-key.txt" taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/soak.lua" \
    http://127.0.0.1:18787/v1/chat/completions | tail -1)
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$gw/status)
  printf '%6s  %6s  %s\n' "$m" "$rss" "$line"
done
printf 'peak RSS %.1f MB; data dir %s\n' "$(peak_rss)" "$(du -sh "$DATA" | cut -f1)"
