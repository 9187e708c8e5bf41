"""Files still arriving: the names a browser, a sync tool or an editor gives a file it is still
writing (never a video yet), video names, and whether a process holds a file open for writing."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# Names a browser, a sync tool or an editor uses while a file is still being written.
PARTIAL_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download", ".!qb", ".opdownload")
PARTIAL_PREFIXES = ("~$", ".syncthing.", ".")


def is_partial_name(name: str) -> bool:
    """A temporary, partial or hidden file name that never counts as an arrived video."""
    lowered = name.lower()
    return lowered.startswith(PARTIAL_PREFIXES) or lowered.endswith(PARTIAL_SUFFIXES)


def is_video_name(name: str, extensions: Iterable[str]) -> bool:
    if is_partial_name(name):
        return False
    suffix = Path(name).suffix.lower().lstrip(".")
    return bool(suffix) and suffix in set(extensions)


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
