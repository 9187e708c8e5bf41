"""Folders: the free space on a folder's disk, whether a path lies within a folder, removing a tree."""

from __future__ import annotations

import shutil
from pathlib import Path


def free_bytes(folder: Path) -> int:
    """Free space on the file system that holds ``folder`` (or its nearest existing parent)."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def is_within(path: Path, folder: Path) -> bool:
    """``path``, symbolic links followed, is ``folder`` or inside it."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything in it, what can be removed (work that is no longer wanted)."""
    shutil.rmtree(path, ignore_errors=True)
