"""One daemon per state dir: an OS lock on ``<state_dir>/daemon.lock``, released by the OS on any exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from midframe.daemon.control_files import read_control_file
from midframe.errors import AlreadyRunning

LOCK_FILE = "daemon.lock"


def _try_lock(handle: IO[str]) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class StateLock:
    """Held while a daemon runs; a second daemon on the same state dir gets :class:`AlreadyRunning`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open while we run)
        if not _try_lock(handle):
            handle.close()
            running = read_control_file(self.state_dir) or {}
            pid = f" (pid {running['pid']})" if running.get("pid") else ""
            raise AlreadyRunning(
                f"another midframe daemon{pid} is already using {self.state_dir}; "
                "stop it first with `midframe stop`, or give this one its own daemon.state_dir"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
