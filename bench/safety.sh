#!/usr/bin/env bash
# Throughput with every request-safety check on (validation, input and
# output moderation, injection detection: the defaults) versus all of them
# off, switched live through the admin API and alternating in one gateway
# process, against the harness's fixed-response upstream (run
# ../shared/bench/setup.sh once). MODE=stream measures streamed answers.
#   bench/safety.sh [SECONDS] [CONNS] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}; CONNS=${2:-32}; PAIRS=${3:-3}
source bench/lib.sh
if [ "${MODE:-json}" = stream ]; then
  sed -i 's/"max_tokens":128}/"max_tokens":128,"stream":true}/' "$OUT/keys.lua"
fi
start_upstream $((SECS * PAIRS * 2 + 120))
start_gateway /tmp/assisters-bench/safety-data
"$BIN" --data-dir /tmp/assisters-bench/safety-data keys create --name bench --tier bench --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
ON='{"validation":{"enabled":true},"safety":{"moderation":{"input":true,"output":true},"injection":{"enabled":true}}}'
OFF='{"validation":{"enabled":false},"safety":{"moderation":{"input":false,"output":false},"injection":{"enabled":false}}}'
run "$OUT/one.txt" >/dev/null  # warm-up
on=(); off=()
for _ in $(seq "$PAIRS"); do
  admin PATCH /admin/settings "$ON"; on+=("$(run "$OUT/one.txt")")
  admin PATCH /admin/settings "$OFF"; off+=("$(run "$OUT/one.txt")")
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]; off = [float(x) for x in sys.argv[2].split()]
print("checks on :", " ".join(f"{x:.0f}" for x in on), "req/s")
print("checks off:", " ".join(f"{x:.0f}" for x in off), "req/s")
print(f"on/off (medians): {statistics.median(on) / statistics.median(off):.2f}x")
PY
printf 'peak RSS %.1f MB\n' "$(peak_rss)"
