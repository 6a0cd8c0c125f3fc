#!/usr/bin/env bash
# Installs the desktop .deb on a clean Debian 12 (a fresh `debootstrap
# --variant=minbase bookworm` root, nothing else in it) with apt, which pulls
# the package's declared dependencies, then starts the installed app there on
# a virtual display and checks that its gateway answers and its window shows
# the dashboard. Also runs the installed headless `assisters` and checks the
# systemd unit and the desktop entry. Needs root (chroot) and the Debian
# mirror; the root is kept in DIR (default /var/tmp/assisters-deb12) so a
# second run skips debootstrap (pass --fresh to start over).
#
# Usage: scripts/verify-deb.sh [--fresh] [PATH.deb]
# (default: the newest .deb under the target dir's release/bundle/deb/).
# Screenshot: artifacts/deb/app-window.png.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
fresh=0
[ "${1:-}" = "--fresh" ] && { fresh=1; shift; }
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DEB=${1:-$(ls -t "$TARGET_DIR"/release/bundle/deb/*.deb 2>/dev/null | head -n 1)}
[ -f "$DEB" ] || { echo "no .deb found; run scripts/package.sh first" >&2; exit 1; }
DIR=${DEB12_DIR:-/var/tmp/assisters-deb12}

step() { printf '\n==> %s\n' "$*"; }
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v Xvfb >/dev/null || need+=(xvfb)
command -v import >/dev/null || need+=(imagemagick)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "$fresh" = 1 ] || [ ! -x "$DIR/usr/bin/apt-get" ]; then
  step "clean Debian 12 root in $DIR"
  umount -R "$DIR"/{proc,sys,dev,tmp/.X11-unix} 2>/dev/null || true
  rm -rf "$DIR"
  debootstrap --variant=minbase bookworm "$DIR" http://deb.debian.org/debian >/dev/null
fi

mnt() { mkdir -p "$DIR/$1"; mountpoint -q "$DIR/$1" || mount --bind "/$1" "$DIR/$1"; }
cleanup() {
  [ -n "${XVFB:-}" ] && kill "$XVFB" 2>/dev/null
  chroot "$DIR" pkill -f assisters-desktop 2>/dev/null || true
  sleep 1
  # Everything mounted under the root, deepest first (the app's session may
  # leave a document-portal FUSE mount), lazily so a busy one still goes.
  findmnt -rno TARGET | grep "^$DIR/" | sort -r | while read -r m; do umount -l "$m"; done
}
trap cleanup EXIT
mnt proc; mnt sys; mnt dev
cp /etc/resolv.conf "$DIR/etc/resolv.conf"

step "install $(basename "$DEB") with apt"
cp "$DEB" "$DIR/tmp/app.deb"
# dbus: a session bus, which every desktop has (the app's single-instance
# check uses it). Not a dependency of the package itself.
chroot "$DIR" sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
  apt-get install -y -qq /tmp/app.deb dbus >/dev/null 2>&1' 
chroot "$DIR" dpkg -s assisters-gateway 2>/dev/null | grep -E '^(Package|Version|Status)' ||
  chroot "$DIR" dpkg -l | grep -i assisters

step "installed files"
# Quoted: the globs are the chroot's, not this machine's.
for f in /usr/bin/assisters-desktop /usr/bin/assisters /usr/lib/systemd/system/assisters.service \
         '/usr/share/applications/*ssisters*.desktop' '/usr/share/icons/hicolor/128x128/apps/*.png'; do
  chroot "$DIR" sh -c "ls $f" || { echo "missing: $f" >&2; exit 1; }
done
chroot "$DIR" assisters --version
grep -E '^(ExecStart|DynamicUser|User)=' "$DIR/usr/lib/systemd/system/assisters.service"

step "the installed app on a virtual display"
mkdir -p /tmp/.X11-unix && mnt tmp/.X11-unix
Xvfb :93 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & XVFB=$!
sleep 1
API=127.0.0.1:18793; ADMIN=127.0.0.1:18794
chroot "$DIR" sh -c "rm -rf /root/.local/share/assisters; mkdir -p /run/dbus
  cd /root && DISPLAY=:93 HOME=/root ASSISTERS_LISTEN=$API ASSISTERS_ADMIN_LISTEN=$ADMIN NO_AT_BRIDGE=1 \
  setsid dbus-run-session -- assisters-desktop >/tmp/app.log 2>&1 &"
for _ in $(seq 60); do
  curl -fs "http://$API/healthz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://$API/healthz"; echo
TOKEN=$(cat "$DIR/root/.local/share/assisters/admin-token")
curl -fsS -H "authorization: Bearer $TOKEN" "http://$ADMIN/admin/crypto" | python3 -c 'import json,sys; print("master key:", json.load(sys.stdin)["storage"])'
sleep 4   # let the window paint
mkdir -p artifacts/deb
DISPLAY=:93 import -window root artifacts/deb/app-window.png
grep -E 'desktop app ready|ERROR' "$DIR/tmp/app.log" | head -n 5
echo "OK: $(basename "$DEB") installs on a clean Debian 12, the app starts and serves; screenshot artifacts/deb/app-window.png"
