"""Real small file systems for tests of full and read-only folders: tmpfs mounts, which need root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def can_mount(tmp_path: Path) -> bool:
    """Whether this process may mount a tmpfs (root with mount(8), and no sandbox that forbids it)."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount")):
        return False
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    try:
        mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
    except (OSError, subprocess.CalledProcessError):
        return False
    subprocess.run(["umount", str(probe)], check=True)
    return True
