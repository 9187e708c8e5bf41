"""What the tray asks of the operating system: open a folder or file, start a daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from loguru import logger

def daemon_command(config_path: Path | None) -> list[str]:
    """The command line of a daemon in the foreground: ``python -m midframe watch [--config ABS]``."""
    command = [sys.executable, "-m", "midframe", "watch"]
    if config_path is not None:
        command += ["--config", str(Path(config_path).expanduser().absolute())]
    return command


def detached_options(platform: str = sys.platform) -> dict[str, object]:
    """Popen options for a child that outlives its parent and ignores the parent's Ctrl-C."""
    options: dict[str, object] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "close_fds": True,
    }
    if platform == "win32":
        options["creationflags"] = (
            getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
            | getattr(subprocess, "DETACHED_PROCESS", 0x8)
            | getattr(subprocess, "CREATE_NO_WINDOW", 0x8000000)
        )
    else:
        options["start_new_session"] = True
    return options


def spawn_daemon(config_path: Path | None) -> subprocess.Popen[bytes]:
    """Start ``midframe watch`` detached (it logs to its own file); no fork, on every platform."""
    command = daemon_command(config_path)
    logger.info("starting the daemon: {}", " ".join(command))
    return subprocess.Popen(command, **detached_options())  # type: ignore[call-overload]


def open_path(path: Path) -> None:
    """Show a folder or file in the desktop's file manager or default application."""
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        logger.warning("cannot open {}: {} is not installed", path, opener)
        return
    subprocess.Popen([opener, str(path)], **detached_options())  # type: ignore[call-overload]
