#!/usr/bin/env bash
# Regenerates every icon from the source drawing icons/icon.svg:
# the app icons (PNG sizes, .ico, .icns) with the Tauri CLI, and the tray's
# state variants (running, paused, degraded) drawn from the same source.
# Usage: icons/generate.sh   (needs npm; installs the CLI into src-tauri/)
set -euo pipefail
cd "$(dirname "$0")/../src-tauri"
[ -x node_modules/.bin/tauri ] || npm ci --no-audit --no-fund --loglevel=error
tauri() { node_modules/.bin/tauri "$@"; }

tauri icon ../icons/icon.svg -o ../icons
rm -rf ../icons/android ../icons/ios   # desktop only

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
svg=../icons/icon.svg
# Paused: the same gate in greys.
sed -e 's/#4f46e5/#4b5563/; s/#0ea5e9/#9ca3af/' "$svg" > "$tmp/tray-paused.svg"
# Degraded: the gate with an amber warning badge.
sed -e 's#</svg>#  <circle cx="800" cy="800" r="200" fill="\#f59e0b" stroke="\#fff" stroke-width="40"/>\n  <path d="M800 700v110" stroke="\#fff" stroke-width="56" stroke-linecap="round"/>\n  <circle cx="800" cy="895" r="32" fill="\#fff"/>\n</svg>#' \
  "$svg" > "$tmp/tray-degraded.svg"
cp "$svg" "$tmp/tray-running.svg"
for state in running paused degraded; do
  tauri icon "$tmp/tray-$state.svg" -o "$tmp/$state" -p 64 >/dev/null
  cp "$tmp/$state/64x64.png" "../icons/tray-$state.png"
done
