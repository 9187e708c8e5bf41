"""Root reads and writes through any permission bits; tests of unwritable folders run the child
without those capabilities instead (``setpriv``), or as they are for other users."""

from __future__ import annotations

import os
import shutil
import subprocess

NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def can_drop_capabilities() -> bool:
    if os.geteuid() != 0:
        return True
    return shutil.which("setpriv") is not None and subprocess.run([*NO_OVERRIDE, "true"]).returncode == 0


def without_override() -> list[str]:
    """The command prefix under which permission bits bind this user (empty unless root)."""
    return NO_OVERRIDE if os.geteuid() == 0 else []
