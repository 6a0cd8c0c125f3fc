#!/usr/bin/env bash
# Builds the Linux packages of the desktop app: a .deb and an .rpm (and an
# AppImage with --appimage, which downloads Tauri's AppImage tools and so
# needs the network). Each package installs
#   /usr/bin/assisters-desktop                 the desktop app (menu entry "Assisters Gateway")
#   /usr/bin/assisters                         the headless gateway and its CLI
#   /usr/lib/systemd/system/assisters.service  `assisters serve` as an unprivileged
#                                              (dynamic) user, data in /var/lib/assisters;
#                                              not enabled: systemctl enable --now assisters
#   /usr/share/assisters/default.example       example /etc/default/assisters
# plus the icons and the desktop entry.
#
# Usage: scripts/package.sh [--appimage]
# Output: the paths of the packages, under $CARGO_TARGET_DIR (default target/)
# release/bundle/. Set SKIP_UI_BUILD=1 to reuse an existing ui/dist.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bundles=deb,rpm
[ "${1:-}" = "--appimage" ] && bundles=deb,rpm,appimage

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
need=()
pkg-config --exists webkit2gtk-4.1 2>/dev/null ||
  need+=(libwebkit2gtk-4.1-dev build-essential file libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev pkg-config)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "missing: ${need[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

if [ "${SKIP_UI_BUILD:-0}" != 1 ] || [ ! -f ui/dist/index.html ]; then
  step "dashboard (ui/dist)"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build)
fi

step "headless gateway (assisters, release)"
cargo build --release --locked --bin assisters
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$TARGET_DIR/package"
ASSISTERS_BIN="$TARGET_DIR/package/assisters"
strip -o "$ASSISTERS_BIN" "$TARGET_DIR/release/assisters"

step "Tauri CLI"
(cd src-tauri && npm ci --no-audit --no-fund --loglevel=error)

step "desktop app (release) and bundles ($bundles)"
# The extra files go in through --config so tauri.conf.json does not depend
# on where the target dir is. Source paths are relative to src-tauri/.
extra=$(python3 - "$ASSISTERS_BIN" <<'PY'
import json, sys
files = {
    "/usr/bin/assisters": sys.argv[1],
    "/usr/lib/systemd/system/assisters.service": "packaging/assisters.service",
    "/usr/share/assisters/default.example": "packaging/assisters.default",
}
print(json.dumps({"bundle": {"linux": {"deb": {"files": files}, "rpm": {"files": files}}}}))
PY
)
(cd src-tauri && node_modules/.bin/tauri build --ci --no-bundle)
strip "$TARGET_DIR/release/assisters-desktop"   # about 6 MB of symbols
(cd src-tauri && node_modules/.bin/tauri bundle --ci --bundles "$bundles" --config "$extra")

step "packages"
shopt -s nullglob
out=("$TARGET_DIR"/release/bundle/deb/*.deb "$TARGET_DIR"/release/bundle/rpm/*.rpm "$TARGET_DIR"/release/bundle/appimage/*.AppImage)
for f in "${out[@]}"; do
  printf '%8s  %s\n' "$(du -h "$f" | cut -f1)" "$f"
done
