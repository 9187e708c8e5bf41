"""The work folder's record of a conversion: which source, which settings, which segments are done.

The source is named by its fingerprint (``midframe.fs.identity.Fingerprint``: the daemon's, handed
down, or one taken here) and its mtime: a resume goes on only when both are the same, so work made
from another file's content is never joined to this one's.

``manifest.json`` is replaced atomically (``midframe.fs.safe_write.atomic_write``: temporary file,
fsync, ``os.replace``, fsync of the folder) and only after the segment it adds is closed and synced,
so after a kill at any moment it names only complete segments. ``verified_segments`` trusts that
record for all but the last few segments (a cheap size check), and reads the last ones back with
ffprobe, so a resume costs a second, not a read of every finished segment.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.probe import count_video_packets
from midframe.errors import OutputError
from midframe.fs.identity import Fingerprint
from midframe.fs.safe_write import atomic_write

MANIFEST_NAME = "manifest.json"
VERSION = 2
# Segments read back with ffprobe on resume, counted from the end; the others are trusted when
# their size is the recorded one (they were fsynced before the manifest named them).
VERIFY_LAST_SEGMENTS = 2
# Names midframe itself creates in a work folder; anything else there means it is not ours. A dot
# before the first two: the temporary names of their atomic writes, left by a kill.
OWN_PREFIXES = ("manifest.json", "seg-", ".manifest.json.", ".seg-", "preflight-", "joined", "segments.ffconcat")


@dataclass(frozen=True)
class Segment:
    file: str
    start: int  # first output frame
    end: int  # one past the last output frame
    source_end: int  # last source frame the segment's frames were made from
    size: int | None = None  # bytes, as synced to disk

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class Manifest:
    source: str
    fingerprint: Fingerprint
    destination_suffix: str
    engine: dict[str, Any]
    output: dict[str, Any]
    resume: dict[str, Any]
    plan: dict[str, Any]
    frames_out: int
    segments: list[Segment] = field(default_factory=list)
    version: int = VERSION
    # engine auto: the engine chosen for each scene (chooser.SceneChoice.to_json), once chosen; a resumed
    # job and every farm segment use these instead of choosing again.
    engine_scenes: list[dict[str, Any]] | None = None
    # The source's mtime as the work started: a file touched since is another file for a resume
    # (a rewritten middle keeps the size and both ends the fingerprint reads).
    source_mtime_ns: int | None = None

    @property
    def frames_done(self) -> int:
        return self.segments[-1].end if self.segments else 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            source=data["source"],
            fingerprint=Fingerprint.from_json(data["fingerprint"]),
            destination_suffix=data["destination_suffix"],
            engine=data["engine"],
            output=data["output"],
            resume=data["resume"],
            plan=data["plan"],
            frames_out=int(data["frames_out"]),
            segments=[Segment(**item) for item in data.get("segments", [])],
            version=int(data.get("version", 0)),
            engine_scenes=data.get("engine_scenes"),
            # An older manifest kept the mtime inside its fingerprint.
            source_mtime_ns=data.get("source_mtime_ns", data["fingerprint"].get("mtime_ns")),
        )

    def save(self, work_dir: Path) -> None:
        target = work_dir / MANIFEST_NAME
        try:
            atomic_write(target, json.dumps(self.to_json(), indent=1))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise OutputError(work_dir, "disk full: no space left on device", errno=exc.errno) from None
            raise OutputError(target, f"cannot write the work manifest: {exc.strerror or exc}", errno=exc.errno) from None


def load_manifest(work_dir: Path) -> Manifest | None:
    """The manifest in ``work_dir``, or None when there is none or it cannot be used."""
    path = work_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("{}: unreadable work manifest ({}); starting over", path, exc)
        return None
    if manifest.version != VERSION:
        logger.info("{}: work manifest of another version; starting over", path)
        return None
    return manifest


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def segment_problem(path: Path, segment: Segment, *, read_back: bool, ffmpeg: FFmpeg,
                    count_frames: Callable[..., int | None] = count_video_packets) -> str | None:
    """Why the recorded ``segment`` at ``path`` cannot be kept, or None when it stands.

    It must exist with its recorded size (when one was recorded); with ``read_back`` it is also read
    and must hold its recorded frame count. Only the newest segments are read back: a size check
    costs a ``stat``, a read-back a pass over the file, and the newest are those an unclean shutdown
    can have left short.
    """
    size = _size(path)
    if size is None or size == 0 or (segment.size is not None and size != segment.size):
        return f"is {'missing' if size is None else f'{size} bytes'} (recorded {segment.size} bytes)"
    if read_back:
        frames = count_frames(path, ffmpeg=ffmpeg)
        if frames != segment.frames:
            return f"has {'unreadable' if frames is None else frames} of {segment.frames} frames"
    return None


def verified_segments(manifest: Manifest, work_dir: Path, *, ffmpeg: FFmpeg,
                      read_back: int = VERIFY_LAST_SEGMENTS,
                      count_frames: Callable[..., int | None] = count_video_packets) -> list[Segment]:
    """The recorded segments, contiguous from frame 0, that are still there as recorded
    (``segment_problem``; the last ``read_back`` are read back). The first that fails ends the list:
    it and everything after it is made again."""
    good: list[Segment] = []
    expected_start = 0
    first_read = len(manifest.segments) - read_back
    for number, segment in enumerate(manifest.segments):
        if segment.start != expected_start:
            logger.warning("{}: segments not contiguous at frame {}; redoing from there", work_dir, expected_start)
            break
        problem = segment_problem(work_dir / segment.file, segment, read_back=number >= first_read, ffmpeg=ffmpeg,
                                  count_frames=count_frames)
        if problem is not None:
            logger.warning("{}: segment {} {}; redoing it", work_dir, segment.file, problem)
            break
        good.append(segment)
        expected_start = segment.end
    return good


def is_work_folder(work_dir: Path) -> bool:
    """True when every entry of ``work_dir`` is something midframe writes there (or it is empty)."""
    return all(entry.name.startswith(OWN_PREFIXES) for entry in work_dir.iterdir())
