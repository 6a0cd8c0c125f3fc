#!/usr/bin/env bash
# End-to-end test of the desktop app: the real window under Xvfb, driven
# through WebDriver (tauri-driver + WebKitWebDriver), against the gateway
# embedded in the app. Installs what it needs on a fresh Debian machine (apt
# packages, a Python venv with selenium, tauri-driver from crates.io), builds
# the UI and the app, runs tests/desktop/test_desktop.py, and ends with a line
# "N passed, M failed" (exit 1 on any failure).
#
# Screenshots: artifacts/desktop/. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }
fail_setup() { echo "desktop test setup failed: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

step "system packages"
need=()
pkg-config --exists webkit2gtk-4.1 2>/dev/null ||
  need+=(libwebkit2gtk-4.1-dev build-essential file libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev pkg-config)
command -v Xvfb >/dev/null || need+=(xvfb)
command -v WebKitWebDriver >/dev/null || need+=(webkit2gtk-driver)
command -v dbus-run-session >/dev/null || need+=(dbus-daemon)
command -v import >/dev/null || need+=(imagemagick)
command -v xdotool >/dev/null || need+=(xdotool)
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v secret-tool >/dev/null || need+=(libsecret-tools)
command -v npm >/dev/null || need+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail_setup "missing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || fail_setup "apt-get install ${need[*]}"
fi

step "python venv (selenium)"
VENV="$ROOT/.venv-desktop"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/desktop/requirements.txt ||
  fail_setup "pip install"

step "tauri-driver"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null; then
  # About a minute and a half on two cores.
  cargo install tauri-driver --locked --version 2.1.0 || fail_setup "cargo install tauri-driver"
fi

step "build the dashboard and the desktop app"
if [ ! -f ui/dist/index.html ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build) || fail_setup "ui build"
fi
cargo build --locked -p assisters-desktop || fail_setup "cargo build -p assisters-desktop"
# The root's clippy step covers the engine only (no GTK there); the shell
# is linted here, where its libraries are installed.
cargo clippy --locked -p assisters-desktop -- -D warnings || fail_setup "cargo clippy -p assisters-desktop"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
APP="$TARGET_DIR/debug/assisters-desktop"

step "Xvfb"
mkdir -p artifacts/desktop
displayfile=$(mktemp)
Xvfb -displayfd 3 -screen 0 1440x900x24 -nolisten tcp 3>"$displayfile" >/dev/null 2>&1 &
XVFB_PID=$!
trap 'kill "$XVFB_PID" 2>/dev/null || true; rm -f "$displayfile"' EXIT
for _ in $(seq 50); do [ -s "$displayfile" ] && break; sleep 0.1; done
[ -s "$displayfile" ] || fail_setup "Xvfb did not start"
export DISPLAY=":$(cat "$displayfile")"
echo "DISPLAY=$DISPLAY"

step "desktop end-to-end (WebDriver)"
# A private session bus (single-instance, notifications and the portals use
# D-Bus) with a Secret Service on it (gnome-keyring, its login keyring
# unlocked with a throwaway password) for the master key; setsid so whatever
# the bus activates is in this test's own process group. 15 minutes at most:
# a WebDriver session that never opens must fail the step, not hang CI.
log="$ROOT/artifacts/desktop/test.log"
set +e
APP="$APP" ARTIFACTS="$ROOT/artifacts/desktop" NO_AT_BRIDGE=1 HOME="$(mktemp -d)" PY="$VENV/bin/python" \
  setsid --wait dbus-run-session -- sh -c '
    printf "desktop-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
    exec timeout --kill-after=10 900 "$PY" -u tests/desktop/test_desktop.py' 2>&1 |
  tee "$log" | grep --line-buffered -v -E '^dbus-daemon\[|^$|portal|pw\.conf|SpiRegistry|max threads value'
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
[ -n "$summary" ] || summary="0 passed, 1 failed"
echo "$summary"
[ "$rc" -eq 0 ] && [[ "$summary" == *" 0 failed" ]]
