"""Writing a small file so that a reader, or the next start after a crash, finds the old content or the
new, never half of one: :func:`atomic_write`. And the one way to make a file or folder owner-only.

The bytes go to a hidden temporary file beside the target (its name starts with ``.<target name>.`` and
ends with ``.tmp``: the watcher ignores such names), are flushed and synced, and the file is renamed
over the target with ``os.replace`` (atomic on POSIX and on Windows), and the folder is synced where
the OS can (POSIX), so the new name survives a power cut too. A temporary file left by a crash is never
read as the target; each writer picks a fresh temporary name, so a leftover never gets in the way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from midframe.fs.names import NAME_MAX, cut_to_bytes

TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o666  # less the umask, as open() would give
# What fsync of a folder says where the file system cannot sync one (some FUSE, SMB and FAT mounts).
_NO_FOLDER_SYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM})


def temporary_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for its next content: ``.<name>.<pid>-<random>.tmp``, the name
    cut short where the whole would not fit the file system (a target's name may take all 255 bytes)."""
    tail = f".{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    return path.with_name(f".{cut_to_bytes(path.name, NAME_MAX - 1 - len(tail))}{tail}")


def fsync_file(path: Path) -> None:
    # Windows flushes only a handle open for writing.
    with open(path, "rb" if os.name == "posix" else "r+b") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` durable (a rename, a new link). Windows cannot open a folder, and some
    file systems cannot sync one: there it is left to the OS."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _NO_FOLDER_SYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FOLDER_SYNC:
            raise
    finally:
        os.close(fd)


def make_private(path: Path, mode: int) -> None:
    """Give ``path`` ``mode`` (0600 for a file, 0700 for a folder) when anyone but its owner may read it;
    Windows' ACLs are left alone."""
    if os.name != "nt" and path.stat().st_mode & 0o077:
        path.chmod(mode)


def atomic_write(path: Path, data: bytes | str, *, mode: int | None = None, encoding: str = "utf-8",
                 errors: str = "strict") -> None:
    """Replace ``path``'s content with ``data`` (text is encoded with ``encoding``/``errors``) atomically;
    see the module doc. ``mode``: the new file's permissions exactly (0600 for a secret), else the
    umask's. On any error the temporary file is removed and the target is as it was."""
    payload = data.encode(encoding, errors) if isinstance(data, str) else data

    def write(temporary: Path) -> None:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     FILE_MODE if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)  # the mode given to open() is masked by the umask
            handle.write(payload)

    atomic_write_by(path, write)


def atomic_write_by(path: Path, write: Callable[[Path], object]) -> None:
    """:func:`atomic_write` for a writer that wants a file name (``write(temporary)`` creates and fills
    it: a library's ``save(path)``); the file is synced here once ``write`` returns."""
    temporary = temporary_name(path)
    try:
        write(temporary)
        fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a read-only folder: the error being raised says so
            temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
