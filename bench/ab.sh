#!/usr/bin/env bash
# Interleaved A/B of gateway binaries on the harness's fixed-response
# upstream (run ../shared/bench/setup.sh once), engine config by default:
# for each round and binary, a fresh data dir, then SECONDS of the bench
# request at CONNS connections. Prints req/s, p50/p90/p99 (wrk --latency),
# CPU per request (perf stat task-clock, if perf is installed), peak RSS
# and the deepest request-log queue seen on /metrics (sampled every 0.2 s).
# BENCH_STREAM=1 sends the same request with `"stream":true`; BENCH_PROMPTS=FILE
# (JSON lines with a `text`) sends each row in turn as the user message.
#   bench/ab.sh CONNS SECONDS ROUNDS BIN...
#   e.g. bench/ab.sh 1 5 2 /tmp/a/assisters /tmp/b/assisters
set -uo pipefail
cd "$(dirname "$0")/.."
CONNS=$1; SECS=$2; ROUNDS=$3; shift 3
BENCH_NO_BUILD=1 source bench/lib.sh
export BENCH_CONFIG=${BENCH_CONFIG:-bench/bench-engine.toml}
start_upstream $(( (SECS + 6) * ROUNDS * $# + 60 ))
for r in $(seq "$ROUNDS"); do
  for b in "$@"; do
    BIN=$b start_gateway /tmp/assisters-bench/ab-data
    "$b" --data-dir /tmp/assisters-bench/ab-data keys create --name bench --tier bench --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
    SECS=2 run "$OUT/one.txt" >/dev/null   # warm-up
    stat=""
    if command -v perf >/dev/null; then
      perf stat -e task-clock -p "$gw" -o "$OUT/ab.stat" -- sleep "$SECS" 2>/dev/null & stat=$!
    fi
    KEYS_FILE=$OUT/one.txt taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$OUT/keys.lua" \
      http://127.0.0.1:18787/v1/chat/completions >"$OUT/ab.wrk" & load=$!
    queue=0
    while kill -0 "$load" 2>/dev/null; do
      q=$(curl -s -H "authorization: Bearer $TOKEN" "http://$ADMIN/metrics" |
        awk '/^[a-z_]*log_queue_depth[ {]/ {print int($NF); exit}')
      [ -n "$q" ] && [ "$q" -gt "$queue" ] && queue=$q
      sleep 0.2
    done
    [ -n "$stat" ] && wait "$stat"
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/ab.wrk")
    lat=$(awk '$1=="50%" || $1=="90%" || $1=="99%" {printf "p%s %s ", substr($1,1,2), $2}' "$OUT/ab.wrk")
    cpu=-
    [ -n "$stat" ] && cpu=$(awk -v r="$rps" -v s="$SECS" '/task-clock/ {gsub(",","",$1); printf "%.1f", $1 * 1000 / (r * s)}' "$OUT/ab.stat")
    echo "round $r $b: $rps req/s, ${lat}cpu_us/req $cpu, peak $(peak_rss) MB, log queue max $queue"
    kill "$gw"; wait "$gw" 2>/dev/null
  done
done
