"""What the tray asks of the operating system: open a folder or file, start a daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from midframe.commandline import midframe_command

START_LOG = "daemon-start.log"  # in the log dir: what a daemon started from the menu said on stderr


def daemon_command(config_path: Path | None) -> list[str]:
    """``midframe watch --quiet [--config ABS]`` by the console script's path (see ``commandline``)."""
    args = ["watch", "--quiet"]
    if config_path is not None:
        args += ["--config", str(Path(config_path).expanduser().absolute())]
    return midframe_command(*args)


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


@dataclass
class StartedDaemon:
    """A daemon the menu started; once it has exited, ``reason()`` says why it did not stay up."""

    process: subprocess.Popen[bytes]
    log: Path

    def poll(self) -> int | None:
        return self.process.poll()

    def reason(self) -> str:
        try:
            lines = [line.strip() for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            lines = []
        said = next((line for line in reversed(lines) if line), "")
        said = said.removeprefix("midframe: error: ")
        return said or f"it exited with code {self.process.returncode} (see {self.log})"


def spawn_daemon(config_path: Path | None, *, log_dir: Path) -> StartedDaemon:
    """Start ``midframe watch`` detached, in the home folder; its stderr (errors only: ``--quiet``
    keeps the log lines in the log file) goes to ``log_dir/daemon-start.log``. No fork anywhere."""
    command = daemon_command(config_path)
    logger.info("starting the daemon: {}", " ".join(command))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / START_LOG
    options = detached_options()
    with open(log, "wb") as stderr:
        options["stderr"] = stderr
        process = subprocess.Popen(command, cwd=Path.home(), **options)  # type: ignore[call-overload]
    return StartedDaemon(process, log)


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
