"""What a source file is, three ways, each for its own question:

- :class:`Fingerprint` (size, SHA-256 of the first and of the last MiB): is this the same content?
  Cheap, and the one format every room shares. The daemon takes it once, as a file settles (the job
  store's ``fingerprint`` column holds :meth:`Fingerprint.text`); the engine's ``convert`` is handed
  it and records it in the work manifest (it takes one itself only when run without one, as
  ``midframe interpolate``); every farm task carries it, so a worker checks it reads the same file as
  the coordinator. Two copies of a file have the same fingerprint: no times in it.
- :class:`Identity` (device, inode, size, mtime, ctime): which file a path names and the state it is
  in; what a job checks between batches with one ``stat``.
- :class:`Content` (:func:`read_content`): the whole file's SHA-256, read once, with its identity from
  the same open file: what tells two files with one fingerprint apart (duplicates, rewrites).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, overload

from midframe.regular import open_regular

FINGERPRINT_CHUNK = 1 << 20
HASH_CHUNK = 4 << 20


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """A file's content, cheaply: its size and the SHA-256 of its first and of its last MiB (the two
    overlap in a file under 2 MiB). See the module doc for who takes it and who checks it."""

    size: int
    head: str
    tail: str

    @classmethod
    def of(cls, path: Path | str, *, size: int | None = None) -> Fingerprint:
        """The fingerprint of the regular file at ``path`` (NotRegularFile, an OSError, for anything
        else). ``size``: the size a ``stat`` just saw (the watcher's), so the fingerprint is of the file
        as it settled even if it grows while it is read; else the open file's."""
        with open_regular(path) as handle:
            if size is None:
                size = os.fstat(handle.fileno()).st_size
            head = _sha256(handle.read(min(FINGERPRINT_CHUNK, size)))
            handle.seek(max(0, size - FINGERPRINT_CHUNK))
            tail = _sha256(handle.read(min(FINGERPRINT_CHUNK, size)))
        return cls(size=size, head=head, tail=tail)

    def text(self) -> str:
        """``size:head:tail``: how the job store keeps it."""
        return f"{self.size}:{self.head}:{self.tail}"

    @classmethod
    def parse(cls, text: str | None) -> Fingerprint | None:
        """The fingerprint :meth:`text` wrote; None for anything else (a store row of an older midframe,
        whose fingerprint was one hash of both ends: its job's engine takes the fingerprint afresh)."""
        parts = (text or "").split(":")
        if len(parts) != 3 or not all(_is_digest(part) for part in parts[1:]):
            return None
        try:
            return cls(size=int(parts[0]), head=parts[1], tail=parts[2])
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        """From :meth:`to_json`'s dict, or an older manifest's or segment record's, which also held the
        source's ``mtime_ns`` (no part of the content; the manifest keeps it beside the fingerprint
        now). KeyError, TypeError or ValueError when ``data`` is no fingerprint."""
        return cls(size=int(data["size"]), head=str(data["head"]), tail=str(data["tail"]))

    def content_change(self, other: Fingerprint) -> str | None:
        """How the file ``other`` was taken of differs in content from this one's, in words; None when
        it does not."""
        if other.size != self.size:
            return f"has {other.size} bytes, not {self.size}"
        if other.head != self.head:
            return "differs in its first MiB"
        if other.tail != self.tail:
            return "differs in its last MiB"
        return None


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(char in "0123456789abcdef" for char in text)


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
