#!/usr/bin/env bash
# RSS of the gateway through a fixed sequence, against the harness's
# fixed-response upstream (run ../shared/bench/setup.sh once): after start,
# after SECONDS of json at 128 connections, after SECONDS of streams, after
# json again. Prints VmHWM (the peak), VmRSS and its anonymous and file parts, in MB.
#   BENCH_CONFIG=bench/bench-engine.toml bench/memory.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}; CONNS=128
source bench/lib.sh
start_upstream $((SECS * 3 + 60))
start_gateway /tmp/assisters-bench/memory-data
"$BIN" --data-dir /tmp/assisters-bench/memory-data keys create --name bench --tier bench --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
show() {
  printf '%-16s' "$1"
  awk '/^(VmHWM|VmRSS|RssAnon|RssFile):/ {printf "%s %.1f  ", $1, $2 / 1024}' "/proc/$gw/status"
  echo
}
show "idle"
run "$OUT/one.txt" >/dev/null; show "json $CONNS"
sed 's/"max_tokens":128}/"max_tokens":128,"stream":true}/' "$OUT/keys.lua" >"$OUT/keys-stream.lua"
KEYS_FILE=$OUT/one.txt taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys-stream.lua" \
  http://127.0.0.1:18787/v1/chat/completions >/dev/null
show "stream $CONNS"
run "$OUT/one.txt" >/dev/null; show "json again"
