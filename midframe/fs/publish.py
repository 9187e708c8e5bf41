"""Giving a complete file its real name without ever overwriting one: :func:`publish`, and the moves
built on it (numbered names, across file systems, a second name, a file moved aside).

:func:`publish` makes the final name a hard link to the temporary file (``os.link`` fails with
``FileExistsError`` when the name is taken, atomically, whoever else is creating it at the same
moment), then drops the temporary name. Where the file system has no hard links (FAT, exFAT, some SMB
and FUSE mounts), Windows renames, which never replaces there; elsewhere the final name is first
claimed with an exclusive create (``O_CREAT | O_EXCL``, as atomic as a link), then the file is renamed
over that claim. The guarantee without hard links is the same (a file that is there, or that another
writer creates meanwhile, is never replaced), but for one thing: between the claim and the rename
(microseconds, or a crash in between) an empty file stands under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from midframe.fs.names import fit_name, name_limit, numbered
from midframe.fs.safe_write import fsync_dir

Link = Callable[[Path, Path], None]
# What os.link raises where the file system has no hard links (FAT, some network shares).
NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EACCES})
COPY_SUFFIX = ".midframe-copy"
MAX_NUMBER = 10_000


def _link(source: Path, target: Path) -> None:
    os.link(source, target)


def publish(temp: Path, final: Path, *, keep: bool = False, link: Link = _link) -> None:
    """Give the complete file ``temp`` the name ``final`` on the same file system; ``FileExistsError``
    (and ``temp`` untouched) when ``final`` is taken. See the module doc for the guarantee.

    With ``keep`` (and hard links available) ``temp`` stays too, as a second name of the same file.
    ``link`` is ``os.link`` (a test passes one that refuses, as a file system without links does).
    Another failure (``EXDEV``: another file system) is raised as it is; the caller copies.
    """
    try:
        link(temp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in NO_LINKS:
            raise
        _publish_without_links(temp, final)
    else:
        if not keep:
            os.unlink(temp)
    fsync_dir(final.parent)


def _publish_without_links(temp: Path, final: Path) -> None:
    if os.name == "nt":
        os.rename(temp, final)  # FileExistsError there when the name is taken: it never replaces
        return
    claim = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # FileExistsError if taken
    os.close(claim)
    try:
        os.replace(temp, final)  # over our own empty claim only
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(final)
        raise


def publish_numbered(source: Path, folder: Path, name: str, *, keep: bool = False, limit: int | None = None,
                     link: Link = _link) -> Path:
    """:func:`publish` ``source`` as ``folder/name``, or ``name (2)``, ``name (3)``... when taken; the
    name it took. ``limit`` (bytes) shortens a name too long for the file system (:func:`numbered`)."""
    for number in range(1, MAX_NUMBER):
        target = folder / numbered(name, number, limit)
        try:
            publish(source, target, keep=keep, link=link)
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
        return publish_numbered(source, folder, name, keep=keep, limit=limit)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    target = _copy_numbered(source, folder, name, limit=limit)
    if not keep:
        source.unlink()
    return target


def copy_no_clobber(source: Path, final: Path) -> None:
    """A full copy of ``source`` (on another file system) as ``final``, through a hidden name beside it,
    published without overwriting (``FileExistsError`` when ``final`` is taken)."""
    staged = final.with_name(f".{fit_name(final.name, name_limit(final.parent) - 1 - len(COPY_SUFFIX))}{COPY_SUFFIX}")
    try:
        shutil.copyfile(source, staged)
        with open(staged, "rb" if os.name == "posix" else "r+b") as handle:
            os.fsync(handle.fileno())
        publish(staged, final)
    finally:
        staged.unlink(missing_ok=True)


def _copy_numbered(source: Path, folder: Path, name: str, *, limit: int) -> Path:
    """A full copy of ``source`` as ``name`` (or ``name (N)``) in ``folder``, through a hidden name."""
    staged = folder / f".{fit_name(name, limit - 1 - len(COPY_SUFFIX))}{COPY_SUFFIX}"
    try:
        shutil.copy2(source, staged)
        return publish_numbered(staged, folder, name, limit=limit)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def link_or_copy(source: Path, folder: Path, name: str) -> Path:
    """A second name for ``source`` in ``folder`` (``name`` or ``name (N)``), never overwriting and
    never moving ``source``: a hard link where the file system has them, else a copy."""
    folder.mkdir(parents=True, exist_ok=True)
    limit = name_limit(folder)
    for number in range(1, MAX_NUMBER):
        target = folder / numbered(name, number, limit)
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, *NO_LINKS):
                raise
            return _copy_numbered(source, folder, name, limit=limit)
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(folder / name))


def find_link(source: Path, folder: Path, name: str) -> Path | None:
    """The ``name``/``name (N)`` in ``folder`` that is the same file as ``source`` (a move cut short)."""
    limit = name_limit(folder)
    for number in range(1, MAX_NUMBER):
        candidate = folder / numbered(name, number, limit)
        if not candidate.exists():
            return None
        try:
            if os.path.samefile(candidate, source):
                return candidate
        except OSError:
            return None
    return None


def move_aside(path: Path, why: str, *, now: float | None = None, companions: Iterable[str] = ()) -> Path:
    """Rename ``path`` to ``<name>.<why>-<local time>`` (``-2``, ``-3``... when taken), never over
    anything; each companion (``-wal``: a suffix to the name) that exists goes with it. Where it went."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    for number in range(1, 1000):
        target = path.with_name(f"{path.name}.{why}-{stamp}" + (f"-{number}" if number > 1 else ""))
        taken = [target.with_name(target.name + c) for c in ("", *companions)]
        if any(os.path.lexists(name) for name in taken):
            continue
        for companion in companions:
            extra = path.with_name(path.name + companion)
            if os.path.lexists(extra):
                publish(extra, target.with_name(target.name + companion))
        try:
            publish(path, target)
        except FileExistsError:
            continue  # taken meanwhile: the next number
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(path))
