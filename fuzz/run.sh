#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) from the seed corpus in
# fuzz/corpus; new inputs go to a scratch dir, crashes fail the run.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-20}; shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(request_body sse origin_xff config safety)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
for t in "${TARGETS[@]}"; do
  mkdir -p "$SCRATCH/$t"
  echo "== fuzzing $t for ${SECS}s"
  status=0
  cargo +nightly fuzz run "$t" "$SCRATCH/$t" "corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=4096 -print_final_stats=1 >"$SCRATCH/$t.log" 2>&1 || status=$?
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs|SUMMARY|panicked" "$SCRATCH/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$SCRATCH/$t.log"
    echo "fuzz target $t failed (exit $status); the crashing input is under fuzz/artifacts/$t"
    exit 1
  fi
done
