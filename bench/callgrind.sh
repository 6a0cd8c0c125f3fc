#!/usr/bin/env bash
# Instructions per request, exactly: the gateway (or the bare stack) under
# `valgrind --tool=callgrind`, instrumented only while wrk sends the bench
# request for SECONDS at 8 connections; prints the total per request and the
# inclusive cost per request of the functions named in PATTERNS. Counts user
# space only (not the kernel) and are noise-free, so they compare changes
# that timed runs on this shared machine cannot tell apart. Slow (~50x), so
# the log writer's batches are smaller than at full speed and its per-commit
# share is larger.
# BENCH_STREAM=1 sends the same request with `"stream":true`.
#   bench/callgrind.sh [engine|defaults|bare] [SECONDS] [PATTERN...]
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-engine}; SECS=${2:-6}; shift $(( $# > 2 ? 2 : $# ))
CONNS=8
source bench/lib.sh
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
start_upstream 600
data=/tmp/assisters-bench/cg-data; rm -rf "$data"
cg="$OUT/callgrind.out"; rm -f "$cg"*
vg=(valgrind --tool=callgrind --instr-atstart=no --trace-children=yes --callgrind-out-file="$cg")
case $WHAT in
  bare)
    cargo build --release --locked --example bare_proxy >/dev/null
    taskset -c 0 "${vg[@]}" target/release/examples/bare_proxy >/dev/null 2>&1 &
    gw=$!; sleep 8; echo unused >"$OUT/one.txt" ;;
  engine|defaults)
    config=bench/bench.toml; [ "$WHAT" = engine ] && config=bench/bench-engine.toml
    # `assisters` re-executes itself once (allocator options): --trace-children follows it.
    taskset -c 0 "${vg[@]}" "$BIN" --data-dir "$data" serve --config "$config" >/dev/null 2>&1 &
    gw=$!
    for _ in $(seq 600); do [ -f "$data/runtime.json" ] && break; sleep 0.2; done
    "$BIN" --data-dir "$data" tiers create bench --rpm 4000000000 --tpm 4000000000 >/dev/null
    "$BIN" --data-dir "$data" keys create --name bench --tier bench --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt" ;;
  *) echo "usage: bench/callgrind.sh [engine|defaults|bare] [SECONDS] [PATTERN...]" >&2; exit 2 ;;
esac
SECS=3 run "$OUT/one.txt" >/dev/null   # warm-up, not counted
callgrind_control -i on "$gw" >/dev/null
n=$(KEYS_FILE=$OUT/one.txt taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys.lua" \
  http://127.0.0.1:18787/v1/chat/completions | awk '/requests in/ {print $1}')
callgrind_control -i off "$gw" >/dev/null
callgrind_control -d "$gw" >/dev/null
sleep 1
kill -INT "$gw" 2>/dev/null || true; sleep 2; kill "$gw" 2>/dev/null || true
dump=$(ls -S "$cg"* | head -1)
callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$OUT/callgrind.txt" 2>/dev/null
total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$OUT/callgrind.txt")
echo "$WHAT: $((total / n)) instructions per request ($n requests; $dump)"
for p in "$@"; do
  grep -F -- "$p" "$OUT/callgrind.txt" | head -1 |
    awk -v n="$n" -v p="$p" '{gsub(",", "", $1); printf "  %-40s %8d\n", p, $1 / n}'
done
