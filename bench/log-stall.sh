#!/usr/bin/env bash
# What a queued request-log record costs in RSS: json at 32 connections
# while another process holds SQLite's write lock for 2 s, so the log
# writer waits and the queue fills (to the 90 % mark, where `/v1` sheds).
# Prints the queue depth, records written and RSS every 0.5 s; the cost per
# record is the RSS gained over the depth gained.
# BENCH_BODY_KIB=N pads each request with N KiB in a member the gateway
# passes through (no prompt to count), so bodies, not records, fill the
# queue: the byte bound (`edge.max_log_queue_bytes`) is then what holds.
#   BENCH_NO_BUILD=1 [BIN_OVERRIDE=path] [BENCH_BODY_KIB=N] bench/log-stall.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=4; CONNS=32
source bench/lib.sh
if [ -n "${BENCH_BODY_KIB:-}" ]; then
  sed -i "/^local body = /a body = body:gsub('\"max_tokens\":128', '\"max_tokens\":128,\"attachment\":\"' .. string.rep('x', $((BENCH_BODY_KIB * 1024))) .. '\"')" "$OUT/keys.lua"
fi
start_upstream 120
data=/tmp/assisters-bench/stall-data
BENCH_CONFIG=${BENCH_CONFIG:-bench/bench-engine.toml} start_gateway "$data"
"$BIN" --data-dir "$data" keys create --name bench --tier bench --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
KEYS_FILE=$OUT/one.txt taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys.lua" \
  http://127.0.0.1:18787/v1/chat/completions >/dev/null &
sleep 1
python3 - "$data/gateway.db" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE"); time.sleep(2); c.execute("COMMIT")
PY
for i in $(seq 12); do
  m=$(curl -s -m 2 -H "authorization: Bearer $TOKEN" "http://$ADMIN/metrics" |
    awk '/^assisters_log_queue_depth / {q=$2} /^assisters_log_queue_bytes / {b=$2/1048576}
      /^assisters_log_records_written_total / {w=$2} END {printf "queue %d (%.1f MiB) written %d\n", q, b, w}')
  echo "t=${i} $m $(awk '/^VmRSS:/ {printf "rss %.1f MB", $2/1024}' /proc/$gw/status)"
  sleep 0.5
done
wait
