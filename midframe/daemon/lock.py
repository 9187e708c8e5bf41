"""One daemon per state dir, and a word when two watch one inbox: OS locks, released by the OS on any
exit, so a lock left by a daemon that died is taken over.

``<state_dir>/daemon.lock``: a second daemon on the same state dir refuses to start.
``<inbox>/.midframe-inbox.lock`` (hidden, so never taken for a video): a daemon with another state dir
on the same inbox would convert every file a second time, so it refuses to start unless
``daemon.shared_inbox: true`` says the inbox is shared on purpose (then it warns). Where the file
system has no locks (some network shares), the pid and host written in the file decide: a lock of a
process that is gone is taken over.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import IO, Any

from loguru import logger

from midframe.api.control_files import read_control_file
from midframe.errors import AlreadyRunning

LOCK_FILE = "daemon.lock"
INBOX_LOCK_FILE = ".midframe-inbox.lock"
# Windows locks are on byte ranges that other processes then cannot read: the inbox lock holds a byte
# far past what is written, so the pid and state dir stay readable.
_INBOX_LOCK_OFFSET = 1 << 20
# What a file system without locks answers (as opposed to "someone else holds it").
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL)


class LocksUnsupported(OSError):
    pass


def _try_lock(handle: IO[str], offset: int = 0) -> bool:
    """Take the OS lock without waiting; False when another process holds it. ``LocksUnsupported``
    when the file system has no locks."""
    if sys.platform == "win32":
        import msvcrt

        try:
            handle.seek(offset)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            raise LocksUnsupported(exc.errno, exc.strerror) from None
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


def _pid_alive(pid: int) -> bool:
    from midframe.api.client import process_alive

    return process_alive(pid)


class InboxLock:
    """Held while a daemon watches ``inbox``; see the module's docstring."""

    def __init__(self, inbox: Path, state_dir: Path) -> None:
        self.inbox = Path(inbox)
        self.path = self.inbox / INBOX_LOCK_FILE
        self.state_dir = Path(state_dir)
        self._handle: IO[str] | None = None

    def _holder(self, handle: IO[str]) -> dict[str, Any]:
        handle.seek(0)
        try:
            data = json.loads(handle.read(4096) or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _claim(self, handle: IO[str]) -> None:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "state_dir": str(self.state_dir)}) + "\n")
        handle.flush()
        self._handle = handle

    def _free(self, handle: IO[str], holder: dict[str, Any]) -> bool:
        """Whether this process may take the lock: its OS lock is free, or where the file system has no
        locks, the process written in it is gone (or is this one)."""
        try:
            return _try_lock(handle, _INBOX_LOCK_OFFSET)
        except LocksUnsupported:
            pid = holder.get("pid")
            if not isinstance(pid, int) or pid == os.getpid():
                return True
            # A process on another machine cannot be looked at from here: taken for alive.
            return holder.get("host") == socket.gethostname() and not _pid_alive(pid)

    def _open(self) -> tuple[IO[str], dict[str, Any], bool]:
        """The lock file, what it says, and whether this process may hold it. A daemon that stops removes
        the file while it still holds the lock: a lock taken on a file removed meanwhile is taken again."""
        for _ in range(10):
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open while we run)
            holder = self._holder(handle)
            free = self._free(handle, holder)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            opened = os.fstat(handle.fileno())
            if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                return handle, holder, free
            handle.close()
        raise AlreadyRunning(f"{self.path}: another process keeps replacing this lock file; is a second daemon "
                             "starting and stopping on this inbox?")

    def acquire(self, *, shared: bool) -> str | None:
        """Take the lock, or take it over from a daemon that is gone. Another daemon watching the inbox:
        ``AlreadyRunning``, or with ``shared`` a warning to log (returned; the lock stays theirs)."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        handle, holder, free = self._open()
        if free:
            if holder.get("pid") not in (None, os.getpid()):
                logger.info("taking over the inbox lock {} left by pid {} (state dir {}), which has ended",
                            self.path, holder.get("pid"), holder.get("state_dir", "?"))
            self._claim(handle)
            return None
        handle.close()
        host = holder.get("host")
        who = f"pid {holder.get('pid', '?')}" + (f" on {host}" if host not in (None, socket.gethostname()) else "")
        other = f"another midframe daemon ({who}, state dir {holder.get('state_dir', '?')}) watches {self.inbox}"
        if shared:
            return f"{other}; daemon.shared_inbox is true, so both go on (each file may be converted by both)"
        raise AlreadyRunning(f"{other}; two daemons would convert every file twice: stop it, or give this one "
                             "its own inbox, or set daemon.shared_inbox: true if the inbox is shared on purpose")

    def release(self) -> None:
        """Remove the file, then let go of the lock (the order a daemon starting meanwhile relies on)."""
        if self._handle is None:
            return
        try:
            self.path.unlink()
        except OSError:
            # Windows does not remove a file that is open: it stays, empty, for the next daemon to take.
            self._handle.seek(0)
            self._handle.truncate()
        self._handle.close()
        self._handle = None
