#!/usr/bin/env bash
# Throughput with request-body logging on versus off (logs.store_bodies,
# switched live through the admin API), alternating in one gateway process,
# against the harness's fixed-response upstream (run ../shared/bench/setup.sh
# once). Records are written either way; only the sealed body differs.
#   bench/bodies.sh [SECONDS] [CONNS] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}; CONNS=${2:-32}; PAIRS=${3:-3}
source bench/lib.sh
start_upstream $((SECS * PAIRS * 2 + 120))
start_gateway /tmp/assisters-bench/bodies-data
"$BIN" --data-dir /tmp/assisters-bench/bodies-data keys create --name bench --tier bench --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
run "$OUT/one.txt" >/dev/null  # warm-up
on=(); off=()
for _ in $(seq "$PAIRS"); do
  admin PATCH /admin/settings '{"logs":{"store_bodies":true}}'; on+=("$(run "$OUT/one.txt")")
  admin PATCH /admin/settings '{"logs":{"store_bodies":false}}'; off+=("$(run "$OUT/one.txt")")
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]; off = [float(x) for x in sys.argv[2].split()]
print("bodies on :", " ".join(f"{x:.0f}" for x in on), "req/s")
print("bodies off:", " ".join(f"{x:.0f}" for x in off), "req/s")
print(f"on/off (medians): {statistics.median(on) / statistics.median(off):.2f}x")
PY
printf 'peak RSS %.1f MB\n' "$(peak_rss)"
