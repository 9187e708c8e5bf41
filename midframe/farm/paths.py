"""Path mapping between the coordinator and a worker (pure: strings in, strings out, no file system).

The coordinator sends paths as it sees them (``/mnt/nas/outbox/...``); a worker's ``farm.path_map``
says where those folders are on its own machine (``{"/mnt/nas": "Z:\\"}``). Either side may be
Windows or POSIX, so paths are handled as text in the style of the side they belong to, never as the
local ``pathlib.Path`` flavour: a Linux worker must be able to read a Windows coordinator's path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_DRIVE = re.compile(r"^[A-Za-z]:([\\/]|$)")


def is_windows_path(path: str) -> bool:
    """``C:\\x``, ``C:/x``, ``\\\\server\\share``: a path in Windows style."""
    return bool(_DRIVE.match(path)) or path.startswith("\\\\")


def _parts(path: str) -> tuple[str, list[str]]:
    """(anchor, components) of ``path`` in its own style; the anchor keeps the case as written."""
    if is_windows_path(path):
        text = path.replace("/", "\\")
        if text.startswith("\\\\"):
            pieces = [piece for piece in text[2:].split("\\") if piece]
            anchor = "\\\\" + "\\".join(pieces[:2])
            return anchor, pieces[2:]
        return text[:2], [piece for piece in text[2:].split("\\") if piece]
    anchor = "/" if path.startswith("/") else ""
    return anchor, [piece for piece in path.split("/") if piece and piece != "."]


def _key(path: str) -> tuple[str, tuple[str, ...]]:
    """Comparable form: Windows paths compare without regard to case, POSIX paths exactly."""
    anchor, parts = _parts(path)
    if is_windows_path(path):
        return anchor.lower(), tuple(part.lower() for part in parts)
    return anchor, tuple(parts)


def _join(base: str, rest: list[str]) -> str:
    anchor, parts = _parts(base)
    parts = parts + rest
    if is_windows_path(base):
        if anchor.startswith("\\\\"):
            return "\\".join([anchor, *parts])
        return anchor + "\\" + "\\".join(parts)
    return anchor + "/".join(parts) if anchor else "/".join(parts)


def _entry(path: str, path_map: Mapping[str, str]) -> tuple[int, str, str] | None:
    """The longest folder of ``path_map`` that holds ``path``: (its depth, it, what it maps to)."""
    key_anchor, key_parts = _key(path)
    best: tuple[int, str, str] | None = None
    for here, there in path_map.items():
        anchor, parts = _key(here)
        if anchor == key_anchor and key_parts[: len(parts)] == parts and (best is None or len(parts) > best[0]):
            best = (len(parts), here, there)
    return best


def map_path(path: str, path_map: Mapping[str, str]) -> str:
    """``path`` with the longest matching folder of ``path_map`` replaced by what it maps to.

    A path under no mapped folder is returned unchanged (both sides see the share at the same
    place). Only whole components match: ``/mnt/nas`` does not match ``/mnt/nasty``.
    """
    best = _entry(path, path_map)
    if best is None:
        return path
    depth, _, there = best
    return _join(there, _parts(path)[1][depth:])


def mapping_said(path: str, path_map: Mapping[str, str]) -> str:
    """Which entry of ``farm.path_map`` turned the coordinator's ``path`` into this worker's, in words."""
    best = _entry(path, path_map)
    if best is None:
        return "no entry of farm.path_map covers it, so this worker reads the coordinator's path as it is"
    return f"farm.path_map maps {best[1]} to {best[2]} on this worker"
