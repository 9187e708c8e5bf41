"""Files dropped on the dashboard: a safe name, a folder of the inbox, a temporary name, a rename.

Nothing outside the inbox can be written: the name loses every folder part and anything a file
system would read as one (or refuse), the folder is the inbox or one of its profile folders and
must still be inside the inbox once symbolic links are followed, and the file is written under a
hidden ``.part`` name (which the watcher ignores) and renamed, never over an existing file, only
when every byte has arrived.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from midframe.fs import folders, incoming, publish

TEMP_PREFIX = ".midframe-upload-"
TEMP_SUFFIX = ".part"
MAX_NAME_BYTES = 240  # room for " (N)" on file systems that allow 255
# Free room the upload leaves on the inbox's disk, beyond its own size.
FREE_MARGIN_BYTES = 64 << 20
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})


class UploadRefused(ValueError):
    """Why an upload is not taken, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def safe_name(raw: str, *, extensions: Iterable[str]) -> str:
    """The file name to give an upload called ``raw`` by the browser, or UploadRefused."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    # Leading dots would hide it from the watcher; Windows drops trailing dots and spaces itself.
    name = _FORBIDDEN.sub("_", name).strip(" .")
    if not name:
        raise UploadRefused(HTTPStatus.BAD_REQUEST, f"{raw[:80]!r} is not a usable file name")
    extensions = tuple(extensions)
    if not incoming.is_video_name(name, extensions):
        raise UploadRefused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                            f"{name}: not a video file name (the inbox takes {', '.join(extensions)})")
    stem, _, ext = name.rpartition(".")
    if stem.split(".")[0].strip().lower() in _WINDOWS_DEVICES:
        stem = f"_{stem}"
    while len(f"{stem}.{ext}".encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return f"{stem.rstrip(' .') or '_'}.{ext}"


def upload_folder(inbox: Path, folder: str, *, profiles: Iterable[str]) -> Path:
    """The inbox (``folder`` empty) or the folder of profile ``folder``; never anything else."""
    if folder and folder not in set(profiles):
        raise UploadRefused(HTTPStatus.BAD_REQUEST, f"{folder[:80]!r} is not a profile of this daemon")
    target = inbox / folder if folder else inbox
    if not folders.is_within(target, inbox) or (folder and target.resolve() == inbox.resolve()):
        raise UploadRefused(HTTPStatus.FORBIDDEN, f"{target} leads outside the inbox; not writing there")
    if not target.is_dir():
        raise UploadRefused(HTTPStatus.CONFLICT, f"{target} is not a folder")
    return target


@dataclass(frozen=True)
class Received:
    path: Path
    size: int


def receive(pieces: Iterator[bytes], *, folder: Path, name: str, length: int,
            free_bytes: Callable[[Path], int] = folders.free_bytes) -> Received:
    """Write ``pieces`` (``length`` bytes in all) to ``folder/name``, or ``name (2)`` if that is taken.

    The bytes go to a hidden temporary file first, synced to disk before the rename, so the watcher
    only ever sees a complete file; on any failure the temporary file is removed.
    """
    free = free_bytes(folder)
    if free < length + FREE_MARGIN_BYTES:
        raise UploadRefused(HTTPStatus.INSUFFICIENT_STORAGE,
                            f"{name}: {length >> 20} MiB do not fit on the inbox's disk ({free >> 20} MiB free)")
    temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            written = 0
            for piece in pieces:
                handle.write(piece)
                written += len(piece)
            handle.flush()
            os.fsync(handle.fileno())
        if written != length:
            raise UploadRefused(HTTPStatus.BAD_REQUEST, f"{name}: {written} bytes arrived of {length}")
        final = publish.move_no_clobber(temp, folder, name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Received(final, written)


def remove_stale_uploads(folders: Iterable[Path]) -> list[Path]:
    """Delete the temporary files of uploads a crash or a stop cut short; returns what went."""
    removed = []
    for folder in folders:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX) and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed
