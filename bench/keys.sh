#!/usr/bin/env bash
# Throughput with one key versus 10,000 keys spread over the load, in one run,
# against the harness's fixed-response upstream (run ../shared/bench/setup.sh
# once; this script starts the harness's mock upstream through bench.sh --hold).
# Every key is on a tier whose limits are far above what the machine serves,
# so every request pays the full policy check (auth, allowlists, requests/min,
# token reservation and settlement) and none is refused.
#   bench/keys.sh [NKEYS] [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; SECS=${2:-8}; CONNS=${3:-32}
HARNESS=${HARNESS:-../shared/bench}
DATA=/tmp/assisters-bench/keys-data
OUT=/tmp/assisters-bench/keys-run; mkdir -p "$OUT"
cargo build --release --locked --bin assisters >/dev/null
BIN=$PWD/target/release/assisters
"$HARNESS/bench.sh" --peers direct --hold $((SECS * 4 + 120)) >"$OUT/hold.log" 2>&1 &
holder=$!
trap 'kill $holder 2>/dev/null; kill $gw 2>/dev/null; true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18080/v1/models && break; sleep 0.2; done
rm -rf "$DATA"
taskset -c 0 "$BIN" --data-dir "$DATA" serve --config bench/bench.toml >/dev/null 2>&1 &
gw=$!
for _ in $(seq 100); do [ -f "$DATA/runtime.json" ] && break; sleep 0.1; done
"$BIN" --data-dir "$DATA" tiers create bench --rpm 4000000000 --tpm 4000000000 >/dev/null
ADMIN=$(python3 -c "import json;print(json.load(open('$DATA/runtime.json'))['admin_listen'])")
TOKEN=$(cat "$DATA/admin-token")
python3 - "$N" "$ADMIN" "$TOKEN" >"$OUT/keys.txt" <<'PY'
import json, sys, urllib.request
n, admin, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(n):
    req = urllib.request.Request(f"http://{admin}/admin/keys", method="POST",
        data=json.dumps({"name": f"k{i}", "tier": "bench"}).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    print(json.load(urllib.request.urlopen(req))["key"])
PY
head -1 "$OUT/keys.txt" >"$OUT/one.txt"
cat >"$OUT/keys.lua" <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local body = '{"model":"mock","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarize the following paragraph in one sentence. Performance work on network services is mostly about measurement discipline."}],"max_tokens":128}'
local i = math.random(#keys)
request = function()
  i = i % #keys + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[i]}, body)
end
LUA
run() { KEYS_FILE=$1 taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys.lua" http://127.0.0.1:18787/v1/chat/completions | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "non2xx", $4 > "/dev/stderr"}'; }
run "$OUT/one.txt" >/dev/null  # warm-up
one=$(run "$OUT/one.txt"); many=$(run "$OUT/keys.txt"); one2=$(run "$OUT/one.txt"); many2=$(run "$OUT/keys.txt")
rss=$(awk '/VmHWM/ {print $2/1024}' /proc/$gw/status)
printf 'keys=%s conns=%s\n1 key: %s %s req/s\n%s keys: %s %s req/s\npeak RSS %.1f MB\n' "$N" "$CONNS" "$one" "$one2" "$N" "$many" "$many2" "$rss"
