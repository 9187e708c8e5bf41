#!/usr/bin/env bash
# Sets midframe up on this machine: ffmpeg (Debian/Ubuntu, as root), the Python package, RIFE weights.
# --dev adds what the tests need: pytest, the headless desktop (Xvfb, trayer, dunst) for the tray tests, and
# Chromium with its driver (Debian's chromium, chromium-driver) and Selenium for the dashboard's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1
py=${PYTHON:-python3}

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  pkgs="ffmpeg"
  if [ $dev = 1 ]; then
    pkgs="$pkgs xvfb xauth trayer dunst dbus dbus-x11 libgirepository1.0-dev libcairo2-dev pkg-config
          gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1 libnotify-bin x11-utils xdotool imagemagick systemd
          chromium chromium-driver"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# An unpinned torch would pull the CUDA build; users with a GPU install their own torch first.
"$py" -c "import torch" 2>/dev/null || "$py" -m pip install -q "torch==2.13.0"
extras="dev"
if [ $dev = 1 ] && [ "$(uname -s)" = Linux ]; then extras="dev,tray-linux"; fi
if [ $dev = 1 ]; then
  "$py" -m pip install -q -e ".[$extras]"
else
  "$py" -m pip install -q -e .
fi
"$py" -m midframe models fetch
