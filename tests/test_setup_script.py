"""scripts/setup.sh on a Linux desktop installs what the tray menu needs, or says plainly that it did not.

The script runs for real; apt-get and the Python it calls are stand-ins that record their arguments
(installing packages for real is not something a test can do), so this checks its decisions only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                                reason="the script's apt branch runs as root on Linux")

FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> "$LOG"
case "$*" in
  *tray-linux*) [ -n "$PIP_TRAY_FAILS" ] && exit 1 ;;
esac
exit 0
"""


def run_setup(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text('#!/bin/sh\necho "apt-get $*" >> "$LOG"\n')
    (bin_dir / "python").write_text(FAKE_PYTHON)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                          timeout=60, env={**base, "PATH": f"{bin_dir}:{base['PATH']}", "LOG": str(log),
                                           "PYTHON": str(bin_dir / "python"), **env})
    return done, log.read_text().splitlines() if log.exists() else []


def test_a_plain_setup_on_a_desktop_installs_the_tray_menu(tmp_path):
    done, calls = run_setup(tmp_path, env={"DISPLAY": ":0"})
    assert done.returncode == 0, done.stderr
    install = next(call for call in calls if call.startswith("apt-get install"))
    assert "ffmpeg" in install and "gir1.2-gtk-3.0" in install and "libgirepository1.0-dev" in install
    assert "xvfb" not in install  # the test desktop is --dev only
    assert "python -m pip install -q -e .[tray-linux]" in calls
    assert calls[-1] == "python -m midframe models fetch"


def test_without_a_desktop_nothing_for_the_tray(tmp_path):
    done, calls = run_setup(tmp_path, env={})
    assert done.returncode == 0, done.stderr
    assert not any("gir1.2" in call or "tray-linux" in call for call in calls)
    assert "python -m pip install -q -e ." in calls


def test_when_pygobject_does_not_build_it_says_so(tmp_path):
    done, calls = run_setup(tmp_path, env={"DISPLAY": ":0", "PIP_TRAY_FAILS": "1"})
    assert done.returncode == 0
    assert "python -m pip install -q -e ." in calls  # midframe itself still installed
    assert "the tray icon will have no menu" in done.stderr and "apt-get install libgirepository1.0-dev" in done.stderr
