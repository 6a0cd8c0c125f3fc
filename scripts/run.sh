#!/usr/bin/env bash
# Runs the product: the headless gateway with its admin API on loopback.
# Extra arguments go to `assisters serve` (e.g. --config FILE, --listen ADDR).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin assisters
exec target/release/assisters serve "$@"
