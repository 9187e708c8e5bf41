"""How midframe is started from outside a shell: the systemd unit, the tray's "Start daemon".

By the absolute path of this interpreter's ``midframe`` console script where it is installed: the
script's own folder heads ``sys.path``, so a ``midframe/`` folder in the working directory cannot
shadow the package. Else by the interpreter itself with ``-P -m midframe``: ``-P`` (Python 3.11+)
keeps the working directory off ``sys.path`` for the same reason.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

SCRIPT = "midframe"


def script_dirs(python: str = sys.executable) -> list[Path]:
    """Where ``python``'s console scripts live: beside it (a venv, Unix), its ``Scripts`` folder
    (Windows), and, for the running interpreter, its install schemes (``pip install --user`` too)."""
    here = Path(python).parent
    folders = [here, here / "Scripts"]
    if Path(python) == Path(sys.executable):
        for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
            try:
                folders.append(Path(sysconfig.get_path("scripts", scheme)))
            except KeyError:
                continue
    return list(dict.fromkeys(folders))


def _runs_with(script: Path, python: str) -> bool:
    """Whether a POSIX script's ``#!`` line names ``python`` (``~/.local/bin`` is shared by every Python)."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace")
    except OSError:
        return False
    if not first.startswith("#!"):
        return False
    words = first[2:].split()
    try:
        return bool(words) and Path(words[0]).resolve() == Path(python).resolve()
    except OSError:
        return False


def console_script(folders: Sequence[Path], *, python: str = sys.executable, platform: str = sys.platform) -> Path | None:
    """This interpreter's ``midframe`` script in ``folders``, if there is one."""
    name = f"{SCRIPT}.exe" if platform == "win32" else SCRIPT
    for folder in folders:
        candidate = folder / name
        if candidate.is_file() and (platform == "win32" or _runs_with(candidate, python)):
            return candidate.absolute()
    return None


def midframe_command(
    *args: str, python: str = sys.executable, folders: Sequence[Path] | None = None, platform: str = sys.platform
) -> list[str]:
    """``[/abs/bin/midframe, *args]``, else ``[python, "-P", "-m", "midframe", *args]``."""
    script = console_script(script_dirs(python) if folders is None else folders, python=python, platform=platform)
    if script is not None:
        return [str(script), *args]
    return [python, "-P", "-m", "midframe", *args]
