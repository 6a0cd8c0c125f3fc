#!/usr/bin/env bash
# Regenerates build/text-order.txt: the functions of the `assisters` binary
# that run, in the order the release link should place them (build.rs hands
# the file to the linker). The kernel maps code in 64 KiB windows around
# each page touched (fault-around), so functions scattered over the binary
# keep most of it resident; placed together, they fill few windows.
#
# The gateway runs under callgrind from its first instruction, with the
# engine configuration first (bench/bench-engine.toml: key auth, limits,
# token counting, request logs), then with every check on (bench/bench.toml);
# each serves JSON and streams, some refusals, the echo model and a few admin
# calls, then shuts down on SIGINT. Functions come out in that order: what the
# engine runs, then what only the checks add. Symbols of later builds keep
# their names unless dependencies or the compiler change (then rerun this;
# stale names are ignored by the linker, at the cost of a looser layout).
#   bench/text-order.sh    (after ../shared/bench/setup.sh once)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=3; CONNS=8
source bench/lib.sh
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
start_upstream 900
names=$OUT/text-order.names; : >"$names"
for config in bench/bench-engine.toml bench/bench.toml; do
  data=/tmp/assisters-bench/order-data; rm -rf "$data"
  cg="$OUT/order.out"; rm -f "$cg"*
  # `assisters` re-executes itself once (allocator options): --trace-children follows it.
  taskset -c 0 valgrind --tool=callgrind --trace-children=yes --demangle=no \
    --compress-strings=no --compress-pos=no --callgrind-out-file="$cg" \
    "$BIN" --data-dir "$data" serve --config "$config" >/dev/null 2>&1 &
  gw=$!
  for _ in $(seq 900); do [ -f "$data/runtime.json" ] && break; sleep 0.2; done
  "$BIN" --data-dir "$data" tiers create bench --rpm 4000000000 --tpm 4000000000 >/dev/null
  "$BIN" --data-dir "$data" keys create --name bench --tier bench --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
  "$BIN" --data-dir "$data" keys list --json >/dev/null
  key=$(cat "$OUT/one.txt")
  v1() { curl -s -o /dev/null -H "authorization: Bearer $key" -H 'content-type: application/json' "$@"; }
  v1 http://127.0.0.1:18787/v1/models
  v1 --data '{"model":"assisters-echo","messages":[{"role":"user","content":"hi"}]}' http://127.0.0.1:18787/v1/chat/completions
  v1 --data '{"model":"nope","messages":[]}' http://127.0.0.1:18787/v1/chat/completions
  v1 --data '{"model":' http://127.0.0.1:18787/v1/chat/completions
  curl -s -o /dev/null -H 'authorization: Bearer ask_wrong' http://127.0.0.1:18787/v1/models
  SECS=$SECS run "$OUT/one.txt" >/dev/null
  sed 's/"max_tokens":128}/"max_tokens":128,"stream":true}/' "$OUT/keys.lua" >"$OUT/keys-stream.lua"
  KEYS_FILE=$OUT/one.txt taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys-stream.lua" \
    http://127.0.0.1:18787/v1/chat/completions >/dev/null
  kill -INT "$gw"; wait "$gw" || true
  # The dump of the process that served (the largest), functions of the
  # binary only, each name once, in the order callgrind first lists them.
  dump=$(ls -S "$cg"* | head -1)
  # (A recursive call is listed again as NAME'2.)
  awk -v bin="$BIN" '/^ob=/ {ob = substr($0, 4)}
    /^fn=/ && ob == bin {f = substr($0, 4); sub(/\047[0-9]+$/, "", f); print f}' "$dump" >>"$names"
done
mkdir -p build
awk '!seen[$0]++' "$names" >build/text-order.txt
echo "build/text-order.txt: $(wc -l <build/text-order.txt) functions"
