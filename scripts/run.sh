#!/usr/bin/env bash
# Runs the product: the headless gateway with its admin API on loopback.
# Extra arguments go to `assisters serve` (e.g. --config FILE, --listen ADDR).
set -euo pipefail
cd "$(dirname "$0")/.."
# The dashboard is embedded in the release binary: build it first.
if command -v npm >/dev/null; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build)
else
  echo "npm not found: the binary will serve a placeholder instead of the dashboard" >&2
fi
cargo build --release --locked --bin assisters
exec "${CARGO_TARGET_DIR:-target}/release/assisters" serve "$@"
