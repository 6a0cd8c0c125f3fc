#!/usr/bin/env bash
# Runs the product on a machine with a display: the desktop app (the gateway
# in-process, its dashboard in a window, a tray icon). Builds what is needed:
# the dashboard (ui/dist) and the app (release). Without a display
# ($DISPLAY / $WAYLAND_DISPLAY unset) it runs the headless server instead
# (scripts/run.sh), passing the arguments on.
#
# Data: ASSISTERS_DATA_DIR, else the platform's data folder (the same one the
# `assisters` CLI uses). Config: ASSISTERS_CONFIG, else config.toml in the
# data folder if present. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "No display (\$DISPLAY and \$WAYLAND_DISPLAY are unset): running the headless gateway." >&2
  exec scripts/run.sh "$@"
fi

# The system libraries Tauri builds against (Debian/Ubuntu names).
if ! pkg-config --exists webkit2gtk-4.1 2>/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libwebkit2gtk-4.1-dev build-essential file libxdo-dev libssl-dev \
      libayatana-appindicator3-dev librsvg2-dev pkg-config
  else
    echo "Install the WebKitGTK build dependencies first:" >&2
    echo "  sudo apt-get install libwebkit2gtk-4.1-dev build-essential file libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev" >&2
    exit 1
  fi
fi

# The window shows the app's own copy of the dashboard: build it first.
(cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build)
cargo build --release --locked -p assisters-desktop --features custom-protocol
exec "${CARGO_TARGET_DIR:-target}/release/assisters-desktop" "$@"
