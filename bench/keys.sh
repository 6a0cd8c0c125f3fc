#!/usr/bin/env bash
# Throughput with one key versus 10,000 keys spread over the load, in one run,
# against the harness's fixed-response upstream (run ../shared/bench/setup.sh
# once). Every key is on a tier whose limits are far above what the machine
# serves, so every request pays the full policy check (auth, allowlists,
# requests/min, token reservation and settlement) and none is refused.
#   bench/keys.sh [NKEYS] [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; SECS=${2:-8}; CONNS=${3:-32}
source bench/lib.sh
start_upstream $((SECS * 4 + 120))
start_gateway /tmp/assisters-bench/keys-data
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
run "$OUT/one.txt" >/dev/null  # warm-up
one=$(run "$OUT/one.txt"); many=$(run "$OUT/keys.txt"); one2=$(run "$OUT/one.txt"); many2=$(run "$OUT/keys.txt")
printf 'keys=%s conns=%s\n1 key: %s %s req/s\n%s keys: %s %s req/s\npeak RSS %.1f MB\n' "$N" "$CONNS" "$one" "$one2" "$N" "$many" "$many2" "$(peak_rss)"
