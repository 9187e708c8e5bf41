#!/usr/bin/env bash
# Sets midframe up on this machine: ffmpeg (Debian/Ubuntu, as root), the Python package, RIFE weights.
# On a Linux desktop (DISPLAY, WAYLAND_DISPLAY or XDG_CURRENT_DESKTOP set, or --tray) also what the tray
# menu needs: PyGObject, built against GTK's introspection data (apt, as root).
# --dev adds what the tests need: pytest, the headless desktop (Xvfb, trayer, dunst) for the tray tests, and
# Chromium with its driver (Debian's chromium, chromium-driver) and Selenium for the dashboard's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
tray=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --tray) tray=1 ;;
    *) echo "usage: $0 [--dev] [--tray]" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python3}
if [ "$(uname -s)" = Linux ] && { [ $dev = 1 ] || [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}${XDG_CURRENT_DESKTOP:-}" ]; }; then
  tray=1
fi
[ "$(uname -s)" = Linux ] || tray=0
tray_pkgs="libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1"

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  pkgs="ffmpeg"
  if [ $tray = 1 ]; then
    pkgs="$pkgs $tray_pkgs"
  fi
  if [ $dev = 1 ]; then
    pkgs="$pkgs xvfb xauth trayer dunst dbus dbus-x11 libnotify-bin x11-utils xdotool imagemagick systemd
          chromium chromium-driver"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# An unpinned torch would pull the CUDA build; users with a GPU install their own torch first.
"$py" -c "import torch" 2>/dev/null || "$py" -m pip install -q "torch==2.13.0"
extras=""
[ $dev = 1 ] && extras="dev"
if [ $tray = 1 ]; then extras="${extras:+$extras,}tray-linux"; fi
if [ -n "$extras" ] && "$py" -m pip install -q -e ".[$extras]"; then
  :
elif [ $tray = 1 ] && [ $dev = 0 ]; then
  # PyGObject builds from source: without GTK's development files it fails. The daemon works without it.
  "$py" -m pip install -q -e .
  cat >&2 <<EOF
midframe: PyGObject (needed for the tray icon's menu) did not install, so the tray icon will have no menu.
  As root: apt-get install $tray_pkgs
  Then:    $py -m pip install -e ".[tray-linux]"
EOF
elif [ -n "$extras" ]; then
  exit 1
else
  "$py" -m pip install -q -e .
fi
"$py" -m midframe models fetch
