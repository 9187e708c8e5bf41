"""Names that fit the file system: a name's length in bytes as stored, cutting without splitting a
character, a short hash tag that keeps two shortened names apart, the extension kept; numbered names
(``clip (2).mp4``) and the longest name a folder's file system takes (the one look at the disk here)."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

NAME_MAX = 255                      # bytes in a file name on most file systems (os.pathconf tells)
NUMBER_ROOM = len(" (9999)")        # what numbering a taken name can add (numbered goes to 9999)
TAG_LENGTH = 8                      # hex digits of the hash that keeps two shortened names apart
LONGEST_EXTENSION = 16              # a "suffix" longer than this is part of the name, not its extension
WORK_DIR_NAME = ".midframe-work"    # the outbox's hidden folder of work in progress


def name_bytes(name: str) -> int:
    """The length of ``name`` as the file system stores it (bytes the OS gave back as they were)."""
    return len(os.fsencode(name))


def _extends(char: str) -> bool:
    """A character that belongs to the one before it (an accent, a variation selector, a joiner)."""
    return unicodedata.category(char) in ("Mn", "Me", "Mc") or char == "\u200d" or "\ufe00" <= char <= "\ufe0f"


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest start of ``text`` that takes at most ``limit`` bytes, cut between characters (never
    between a letter and its accent)."""
    used = end = 0
    for char in text:
        size = name_bytes(char)
        if used + size > limit:
            break
        used += size
        end += 1
    while 0 < end < len(text) and _extends(text[end]):
        end -= 1
    return text[:end]


def name_tag(text: str) -> str:
    """``~`` and a short hash of ``text``: what a shortened name ends with, so two long names that share
    their start are still told apart."""
    return "~" + hashlib.sha256(os.fsencode(text)).hexdigest()[:TAG_LENGTH]


def fit_stem(stem: str, limit: int) -> str:
    """``stem`` if it takes at most ``limit`` bytes, else its start and :func:`name_tag` of all of it."""
    if name_bytes(stem) <= limit:
        return stem
    tag = name_tag(stem)
    # A name ending in a space or dot is awkward (Windows drops them): the tag follows the cut at once.
    return cut_to_bytes(stem, max(0, limit - len(tag))).rstrip(" .") + tag


def split_extension(name: str) -> tuple[str, str]:
    """``clip.mp4`` -> (``clip``, ``.mp4``); a name without a short extension keeps it all in the stem."""
    suffix = Path(name).suffix
    if not suffix or name_bytes(suffix) > LONGEST_EXTENSION or suffix == name:
        return name, ""
    return name[: -len(suffix)], suffix


def fit_name(name: str, limit: int | None, *, extra: str = "") -> str:
    """``name`` with ``extra`` (`` (2)``) before its extension, the stem shortened so that it all takes
    at most ``limit`` bytes (None: as it is). The extension is always kept."""
    stem, suffix = split_extension(name)
    if limit is None:
        return stem + extra + suffix
    return fit_stem(stem, limit - name_bytes(extra) - name_bytes(suffix)) + extra + suffix


def numbered(name: str, number: int, limit: int | None = None) -> str:
    """``clip.mp4`` with 2 -> ``clip (2).mp4``; with ``limit`` (bytes) the stem is shortened to fit."""
    return fit_name(name, limit, extra=f" ({number})" if number >= 2 else "")


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
