#!/usr/bin/env bash
# Benchmarks the release build with ../shared/bench (run its setup.sh once).
# Creates a data dir with one key, then hands over to bench.sh; extra
# arguments go to bench.sh (e.g. --rounds 3 --modes json).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench}
DATA=${BENCH_DATA:-/tmp/assisters-bench/gw-data}
CONFIG=${BENCH_CONFIG:-bench/bench.toml}
cargo build --release --locked --bin assisters
BIN=$(realpath "${CARGO_TARGET_DIR:-target}")/release/assisters
rm -rf "$DATA"
"$BIN" --data-dir "$DATA" serve --config "$CONFIG" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$DATA/runtime.json" ] && break; sleep 0.1; done
# Limits far above what the machine can serve, so they are checked but never refuse.
"$BIN" --data-dir "$DATA" tiers create bench --rpm 4000000000 --tpm 4000000000 >/dev/null
KEY=$("$BIN" --data-dir "$DATA" keys create --name bench --tier bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
kill "$pid"; wait "$pid" || true
exec "$HARNESS/bench.sh" --url http://127.0.0.1:18787/v1 --key "$KEY" --name assisters \
  --cmd "$BIN --data-dir $DATA serve --config $PWD/$CONFIG" "$@"
