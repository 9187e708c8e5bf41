"""File operations the daemon trusts with user files: fingerprints, names to ignore, no-clobber moves
(with names that fit the file system), and whether another process is still writing a file."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from midframe.fs.names import NAME_MAX, fit_name
from midframe.regular import open_regular

FINGERPRINT_CHUNK = 1 << 20
HASH_CHUNK = 4 << 20
# Names a browser, a sync tool or an editor uses while a file is still being written.
PARTIAL_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download", ".!qb", ".opdownload")
PARTIAL_PREFIXES = ("~$", ".syncthing.", ".")
WORK_DIR_NAME = ".midframe-work"
# What os.link raises where the file system has no hard links (FAT, some network shares).
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EACCES)


def fingerprint(path: Path, *, size: int | None = None) -> str:
    """A content fingerprint: the size and a SHA-256 of the first and last MiB."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        if size is None:
            size = os.fstat(handle.fileno()).st_size
        digest.update(str(size).encode())
        digest.update(handle.read(FINGERPRINT_CHUNK))
        if size > FINGERPRINT_CHUNK:
            handle.seek(max(FINGERPRINT_CHUNK, size - FINGERPRINT_CHUNK))
            digest.update(handle.read(FINGERPRINT_CHUNK))
    return f"{size}:{digest.hexdigest()}"


@dataclass(frozen=True)
class Identity:
    """Which file a path names and the state it is in: what a job remembers of its source.

    ``ctime_ns`` moves with any write even when the writer puts the mtime back (and with a chmod or a
    new hard link, which change nothing inside): a source whose only change is its ctime is hashed
    again rather than taken for changed. Windows has no such time (its ctime is the creation time), so
    it is 0 there.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int = 0

    @classmethod
    def of(cls, info: os.stat_result) -> Identity:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
                   0 if os.name == "nt" else info.st_ctime_ns)

    def text(self) -> str:
        return f"{self.device}:{self.inode}:{self.size}:{self.mtime_ns}:{self.ctime_ns}"

    @classmethod
    def parse(cls, text: str | None) -> Identity | None:
        try:
            return cls(*(int(part) for part in (text or "").split(":")))
        except (TypeError, ValueError):
            return None


def identity_change(then: Identity, now: Identity) -> str | None:
    """How the file ``now`` differs from the one ``then`` (ctime aside), in words; None if it does not."""
    if (then.device, then.inode) != (now.device, now.inode):
        return "was replaced by another file"
    if then.size != now.size:
        return f"{'grew' if now.size > then.size else 'shrank'} from {then.size} to {now.size} bytes"
    if then.mtime_ns != now.mtime_ns:
        return "was modified"
    return None


@dataclass(frozen=True)
class Content:
    """The whole file read once: its SHA-256 and its identity while it was read."""

    sha256: str
    info: os.stat_result  # of the open file, after the last byte was read
    steady: bool          # nothing changed it while it was read

    @property
    def identity(self) -> Identity:
        return Identity.of(self.info)


@overload
def read_content(path: Path) -> Content: ...
@overload
def read_content(path: Path, *, keep_going: Callable[[], bool]) -> Content | None: ...


def read_content(path: Path, *, keep_going: Callable[[], bool] = lambda: True) -> Content | None:
    """Hash the whole file in chunks (the quick fingerprint confirmed), noting its identity from the same
    open file before and after, so the hash and the identity are of one and the same content. None when
    ``keep_going`` said stop between two chunks (a long film on a slow disk takes minutes)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        before = os.fstat(handle.fileno())
        while chunk := handle.read(HASH_CHUNK):
            if not keep_going():
                return None
            digest.update(chunk)
        after = os.fstat(handle.fileno())
    return Content(digest.hexdigest(), after, steady=Identity.of(before) == Identity.of(after))


def open_for_writing(path: Path, *, proc: Path = Path("/proc")) -> bool:
    """Whether a process of this user holds ``path`` open for writing.

    Linux tells through ``/proc/<pid>/fd`` and ``fdinfo``; elsewhere (or for writers on another
    machine, over a share) this says False and the settle time and the stalled-copy grace have to do.
    """
    if not hasattr(os, "getuid") or not (proc / "self" / "fd").is_dir():
        return False
    try:
        wanted = os.path.realpath(path)
    except OSError:
        return False
    uid = os.getuid()
    try:
        processes = [entry for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return False
    for process in processes:
        try:
            if process.stat(follow_symlinks=False).st_uid != uid:
                continue
            descriptors = list(os.scandir(os.path.join(process.path, "fd")))
        except OSError:
            continue  # ended meanwhile, or not ours to look at
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor.path) != wanted:
                    continue
                info = Path(process.path, "fdinfo", descriptor.name).read_text()
            except OSError:
                continue
            flags = next((line.split()[1] for line in info.splitlines() if line.startswith("flags:")), "0")
            if int(flags, 8) & (os.O_WRONLY | os.O_RDWR):
                return True
    return False


def is_partial_name(name: str) -> bool:
    """A temporary, partial or hidden file name that never counts as an arrived video."""
    lowered = name.lower()
    return lowered.startswith(PARTIAL_PREFIXES) or lowered.endswith(PARTIAL_SUFFIXES)


def is_video_name(name: str, extensions: Iterable[str]) -> bool:
    if is_partial_name(name):
        return False
    suffix = Path(name).suffix.lower().lstrip(".")
    return bool(suffix) and suffix in set(extensions)


def name_limit(folder: Path) -> int:
    """The longest file name, in bytes, that the file system holding ``folder`` (or its nearest existing
    parent) takes: ``os.pathconf`` where the OS has it, else 255."""
    probe = Path(folder)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        limit = os.pathconf(probe, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return NAME_MAX
    return limit if limit and limit > 0 else NAME_MAX


def numbered(name: str, number: int, limit: int | None = None) -> str:
    """``clip.mp4`` with 2 -> ``clip (2).mp4``; with ``limit`` (bytes) the stem is shortened to fit."""
    return fit_name(name, limit, extra=f" ({number})" if number >= 2 else "")


def _place(source: Path, target: Path, *, keep: bool) -> None:
    """Give ``source`` the name ``target`` on the same file system; FileExistsError if it is taken.

    With ``keep`` (and hard links available) ``source`` stays too, as a second name of the same file.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        # No hard links here (FAT, some network shares): rename, which overwrites on POSIX, so look first.
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(source, target)
        return
    if not keep:
        os.unlink(source)


def _place_numbered(source: Path, folder: Path, name: str, *, keep: bool, limit: int) -> Path:
    for number in range(1, 10_000):
        target = folder / numbered(name, number, limit)
        try:
            _place(source, target, keep=keep)
        except FileExistsError:
            continue
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(folder / name))


def move_no_clobber(source: Path, folder: Path, name: str | None = None, *, keep: bool = False,
                    room: int = 0) -> Path:
    """Move ``source`` into ``folder`` as ``name``, or ``name (2)``, ``name (3)``... if taken.

    Never overwrites. Across file systems the file is first copied to a hidden name in ``folder`` so a
    crash never leaves a half-copied file under a real name. ``keep`` leaves ``source`` in place as a
    hard link where the file system has them (the caller removes it once the move is on record). A name
    too long for the file system is shortened (:func:`numbered`), leaving ``room`` bytes for a companion
    file's longer name (``<name>.error.txt``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = name or source.name
    limit = name_limit(folder) - room
    try:
        return _place_numbered(source, folder, name, keep=keep, limit=limit)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    target = _copy_numbered(source, folder, name, limit=limit)
    if not keep:
        source.unlink()
    return target


COPY_SUFFIX = ".midframe-copy"


def _copy_numbered(source: Path, folder: Path, name: str, *, limit: int) -> Path:
    """A full copy of ``source`` as ``name`` (or ``name (N)``) in ``folder``, through a hidden name."""
    staged = folder / f".{fit_name(name, limit - 1 - len(COPY_SUFFIX))}{COPY_SUFFIX}"
    try:
        shutil.copy2(source, staged)
        return _place_numbered(staged, folder, name, keep=False, limit=limit)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def link_or_copy(source: Path, folder: Path, name: str) -> Path:
    """A second name for ``source`` in ``folder`` (``name`` or ``name (N)``), never overwriting and
    never moving ``source``: a hard link where the file system has them, else a copy."""
    folder.mkdir(parents=True, exist_ok=True)
    limit = name_limit(folder)
    for number in range(1, 10_000):
        target = folder / numbered(name, number, limit)
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, *_NO_LINKS):
                raise
            return _copy_numbered(source, folder, name, limit=limit)
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(folder / name))


def find_link(source: Path, folder: Path, name: str) -> Path | None:
    """The ``name``/``name (N)`` in ``folder`` that is the same file as ``source`` (a move cut short)."""
    limit = name_limit(folder)
    for number in range(1, 10_000):
        candidate = folder / numbered(name, number, limit)
        if not candidate.exists():
            return None
        try:
            if os.path.samefile(candidate, source):
                return candidate
        except OSError:
            return None
    return None


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def free_bytes(folder: Path) -> int:
    """Free space on the file system that holds ``folder`` (or its nearest existing parent)."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
