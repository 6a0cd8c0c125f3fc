#!/usr/bin/env bash
# Runs every test: formatting, lints, the Rust unit and integration tests
# (real server, real upstream), the OpenAI Python SDK compatibility suite,
# the dashboard's type check, unit tests and end-to-end tests in a real
# Chromium, the desktop app's end-to-end test in its real window under Xvfb,
# and a short fuzzing run. Installs what it needs on a fresh machine (Debian packages, the
# Python venv, npm packages).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
# Free space where the build goes, so a failure from a full disk reads as one.
disk() { df -h "${CARGO_TARGET_DIR:-.}" 2>/dev/null | awk 'NR==2 {print "disk: " $4 " free of " $2}' || true; }
disk

step "system packages"
missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  else
    echo "missing: ${missing[*]}" >&2; exit 1
  fi
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked

# On one CPU the binary runs tokio's single-threaded scheduler (src/main.rs);
# the test machine has more, so run the request-path suites once that way.
step "cargo test, single-threaded runtime"
TOKIO_WORKER_THREADS=1 cargo test --locked --test api --test errors --test edge --test logs

step "OpenAI SDK compatibility (Python)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/compat/requirements.txt
GATEWAY_BIN="$PWD/target/debug/assisters" .venv/bin/python -m pytest tests/compat -q -p no:cacheprovider

step "dashboard: install, type check, unit tests, build"
(cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run check && npm test && npm run build)

step "dashboard: end-to-end in Chromium against the real gateway"
(cd ui && GATEWAY_BIN="$PWD/../target/debug/assisters" npm run e2e)

step "desktop app: end-to-end in its real window under Xvfb (WebDriver)"
# tests/desktop/run.sh installs Xvfb, WebKitWebDriver and the rest with
# apt-get; without a way to get a display server the step says so.
if command -v Xvfb >/dev/null || command -v apt-get >/dev/null; then
  tests/desktop/run.sh
else
  echo "SKIPPED: no Xvfb and no apt-get to install it"
fi

step "fuzzing: every target briefly, from the seed corpus"
disk
# cargo fuzz needs a nightly toolchain (sanitizers); it is installed with the
# stable one on our machines. Without it the step says so and is skipped.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz/run.sh "${FUZZ_SECONDS:-10}"
else
  echo "SKIPPED: no nightly toolchain here (rustup toolchain install nightly)"
fi
