"""Opening a user's file without blocking: regular files only.

Opening a FIFO for reading blocks until a writer appears (forever, for a ``y.mp4`` FIFO dropped in
the inbox), and opening a device can have side effects. Callers ``stat`` first and skip anything
that is not a regular file; :func:`open_regular` closes the gap between that check and the open (a
FIFO put in the file's place): it opens with ``O_NONBLOCK`` and checks the descriptor with ``fstat``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def kind_of(mode: int) -> str | None:
    """None for a regular file, else what it is, in words."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "a special file"


class NotRegularFile(OSError):
    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"it is {kind}, not a regular file", str(path))
        self.kind = kind


_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))


def open_regular(path: Path | str) -> BinaryIO:
    """``open(path, "rb")`` that never blocks: NotRegularFile (an OSError) for anything but a regular file."""
    fd = os.open(path, _FLAGS)
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(path, kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
