#!/usr/bin/env bash
# User and system CPU per request, and context switches per request, of the
# nginx proxy, the gateway and the bare stack (examples/bare_proxy.rs), each
# under the same load in turn: the harness's upstream and nginx proxy, every
# server on CPU 0 at nice -10 as bench.sh runs them, wrk on CPU 1. Read from
# /proc (utime, stime, context switches of every thread) around each run.
# BENCH_STREAM=1 sends the same request with `"stream":true`.
#   bench/cpu-split.sh [CONNS] [SECONDS] [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-32}; SECS=${2:-5}; ROUNDS=${3:-2}
BENCH_NO_BUILD=1 source bench/lib.sh
export BENCH_CONFIG=${BENCH_CONFIG:-bench/bench-engine.toml}
BARE=$(dirname "$BIN")/examples/bare_proxy
[ -x "$BARE" ] || { echo "build it first: cargo build --release --example bare_proxy" >&2; exit 1; }
"$HARNESS/bench.sh" --peers direct,nginx --hold $(( (SECS + 3) * ROUNDS * 4 + 60 )) >"$OUT/hold.log" 2>&1 &
holder=$!
trap 'kill $holder 2>/dev/null; kill $gw 2>/dev/null; true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18081/v1/models && break; sleep 0.2; done
echo sk-bench-master >"$OUT/master.txt"   # the harness's key for its nginx proxy
master=$(pgrep -f "proxy/nginx.conf" | head -1)
nginx_workers=$(pgrep -P "$master" | tr '\n' ' ')

nice_all() { for t in /proc/$1/task/*; do renice -n -10 -p "${t##*/}" >/dev/null; done; }
# utime stime voluntary involuntary of PIDS: CPU time from the process's
# own stat (which keeps what threads that have exited used: the blocking
# pool's idle ones do), switches summed over the live threads.
ticks() {
  for p in $1; do
    echo "$(awk '{print $14, $15}' "/proc/$p/stat") $(cat /proc/$p/task/*/status |
      awk '/^voluntary/ {v+=$2} /^nonvol/ {n+=$2} END {print v, n}')"
  done | awk '{u+=$1; s+=$2; v+=$3; n+=$4} END {print u, s, v, n}'
}
# measure NAME PIDS PORT KEYS_FILE
measure() {
  KEYS_FILE=$4 taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s "$OUT/keys.lua" "http://127.0.0.1:$3/v1/chat/completions" >/dev/null
  local before; before=$(ticks "$2")
  KEYS_FILE=$4 taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys.lua" \
    "http://127.0.0.1:$3/v1/chat/completions" >"$OUT/split.wrk"
  echo "$before $(ticks "$2") $(awk '/requests in/ {print $1}' "$OUT/split.wrk") $(getconf CLK_TCK)" |
    awk -v name="$1" '{ r = $9; t = $10;
      printf "%-8s %8d requests  user %5.1f us  sys %5.1f us  voluntary %.2f  involuntary %.2f  (per request)\n",
        name, r, ($5 - $1) / t * 1e6 / r, ($6 - $2) / t * 1e6 / r, ($7 - $3) / r, ($8 - $4) / r }'
}

start_gateway /tmp/assisters-bench/split-data
"$BIN" --data-dir /tmp/assisters-bench/split-data keys create --name bench --tier bench --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
nice_all "$gw"
for _ in $(seq "$ROUNDS"); do
  measure nginx "$nginx_workers" 18081 "$OUT/master.txt"
  measure gateway "$gw" 18787 "$OUT/one.txt"
done
kill "$gw"; wait "$gw" 2>/dev/null
taskset -c 0 "$BARE" >/dev/null 2>&1 &
gw=$!
sleep 1; nice_all "$gw"
for _ in $(seq "$ROUNDS"); do
  measure bare "$gw" 18787 "$OUT/one.txt"
  measure nginx "$nginx_workers" 18081 "$OUT/master.txt"
done
