"""What a video file holds: size, exact rates, every frame's timestamp, streams, colour, rotation.

Frame counts and timestamps come from reading the video stream's packets (demux only, no
decoding: fast), never from header fields such as ``nb_frames``, which are often missing or wrong.
Timestamps are exact ``Fraction`` seconds (pts * time_base), the first frame at 0.

``probe`` prefers ffprobe; with a bundled ffmpeg that has no ffprobe it parses ``ffmpeg -i`` and
lists packets with ``-c copy -f framecrc``, which is just as exact.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, overload

from midframe.engine.ffmpeg import QUIET, FFmpeg, run, timeout_for_bytes
from midframe.engine.sniff import container_refusal, frames_refusal
from midframe.errors import MediaError
from midframe.regular import NotRegularFile, open_regular

STILL_IMAGE_FORMATS = re.compile(r"(^|,)(image2|png_pipe|jpeg_pipe|webp_pipe|bmp_pipe|gif|tiff_pipe|apng)")
# Where a truncated file still opens, packet reading ends with one of these.
TRUNCATION_MARKERS = ("partial file", "File ended prematurely", "Truncating packet")


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream the output keeps: absolute stream index, kind, codec name."""

    index: int
    kind: str  # "audio" | "subtitle"
    codec: str
    language: str | None = None


class Timestamps(Sequence[Fraction]):
    """Frame presentation times in seconds, computed on demand from integer ticks."""

    __slots__ = ("_ticks", "_time_base")

    def __init__(self, ticks: Sequence[int], time_base: Fraction) -> None:
        self._ticks = ticks
        self._time_base = time_base

    def __len__(self) -> int:
        return len(self._ticks)

    @overload
    def __getitem__(self, index: int) -> Fraction: ...
    @overload
    def __getitem__(self, index: slice) -> list[Fraction]: ...
    def __getitem__(self, index: int | slice) -> Fraction | list[Fraction]:
        if isinstance(index, slice):
            return [tick * self._time_base for tick in self._ticks[index]]
        return self._ticks[index] * self._time_base

    def __iter__(self) -> Iterator[Fraction]:
        time_base = self._time_base
        return (tick * time_base for tick in self._ticks)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    format_name: str
    codec: str
    width: int  # as stored (before rotation)
    height: int
    r_frame_rate: Fraction
    avg_frame_rate: Fraction
    frame_count: int
    duration: Fraction  # seconds from the first frame's start to the last frame's end
    time_base: Fraction
    pts: tuple[int, ...] = field(repr=False)  # per frame, presentation order, first frame = 0
    first_pts: Fraction  # absolute time of the first frame in the file (seconds)
    start_time: Fraction  # the container's start time (seconds), what ffmpeg's -ss counts from
    vfr: bool
    pix_fmt: str
    bit_depth: int
    rotation: int  # display rotation in degrees as ffprobe reports it, normalised to 0/90/180/270
    color_range: str | None
    color_space: str | None
    color_transfer: str | None
    color_primaries: str | None
    has_b_frames: bool
    video_index: int
    audio: tuple[StreamInfo, ...]
    subtitles: tuple[StreamInfo, ...]
    size_bytes: int

    @property
    def timestamps(self) -> Timestamps:
        return Timestamps(self.pts, self.time_base)

    @property
    def fps(self) -> Fraction:
        """The nominal rate: r_frame_rate for constant-rate video, else the average."""
        if not self.vfr and self.r_frame_rate > 0:
            return self.r_frame_rate
        return self.avg_frame_rate

    @property
    def high_bit_depth(self) -> bool:
        return self.bit_depth > 8

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


# --- helpers ---------------------------------------------------------------------------------


def _fraction(text: Any) -> Fraction | None:
    if text in (None, "", "N/A", "0/0"):
        return None
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def bit_depth_of(pix_fmt: str) -> int:
    name = pix_fmt.lower()
    if name.startswith(("rgb48", "bgr48", "rgba64", "bgra64", "ya16", "p016", "gray16", "xv48")):
        return 16
    if name.startswith(("p010", "x2rgb10", "x2bgr10", "xv30", "y210")):
        return 10
    if name.startswith(("p012", "xv36", "y212")):
        return 12
    match = re.search(r"p(\d{1,2})(le|be)$", name) or re.search(r"(\d{1,2})(le|be)$", name)
    if match and int(match.group(1)) in (9, 10, 12, 14, 16):
        return int(match.group(1))
    return 8


def _snap_rate(value: Fraction) -> Fraction:
    """A measured frame rate turned into the rate people mean (25, 24000/1001, ...)."""
    for candidate in (Fraction(round(value)), Fraction(round(value * Fraction(1001, 1000)) * 1000, 1001)):
        if candidate > 0 and abs(candidate - value) / value < Fraction(1, 2000):
            return candidate
    return value.limit_denominator(1001)


def is_vfr(pts: Sequence[int], time_base: Fraction) -> bool:
    """True when frame intervals vary by more than container rounding (a tick and a half, 2 %)."""
    if len(pts) < 3:
        return False
    deltas = [b - a for a, b in zip(pts, pts[1:])]
    mean = sum(deltas) / len(deltas)
    tolerance = max(1.5, mean * 0.02)
    return any(abs(delta - mean) > tolerance for delta in deltas)


def _precheck(path: Path) -> int:
    """Reasons a file cannot be a video that need no ffmpeg; returns its size."""
    if not path.exists():
        raise MediaError(path, "does not exist")
    if path.is_dir():
        raise MediaError(path, "is a folder, not a video file")
    try:
        with open_regular(path) as handle:
            handle.read(1)
    except NotRegularFile as exc:
        raise MediaError(path, f"is {exc.kind}, not a regular file") from None
    except PermissionError:
        raise MediaError(path, "cannot be read: permission denied") from None
    except OSError as exc:
        raise MediaError(path, f"cannot be read: {exc.strerror or exc}") from None
    size = path.stat().st_size
    if size == 0:
        raise MediaError(path, "is empty (0 bytes)")
    return size


def _looks_like_a_container(path: Path) -> bool:
    """Magic bytes of the common video containers: a file that has them but will not open is damaged."""
    try:
        with open_regular(path) as handle:
            head = handle.read(400)
    except OSError:
        return False
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
        or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75"))
        or (head.startswith(b"RIFF") and head[8:11] == b"AVI")
        or (len(head) > 376 and head[0] == head[188] == head[376] == 0x47)
    )


def last_error_line(stderr: str, path: Path | None = None) -> str:
    """The last non-empty line of an ffmpeg log, without its ``[demuxer @ 0x...]`` prefix."""
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    last = re.sub(r"^\[[^]]*\]\s*", "", last).strip()
    return last.replace(f"{path}: ", "") if path is not None else last


_GENERIC = ("Conversion failed", "Error initializing output stream", "Could not write header", "Error opening output",
            "Nothing was written", "Error while opening encoder")


def first_error_line(stderr: str) -> str:
    """The first specific line of an ffmpeg error log (what went wrong, not that it failed)."""
    lines = [re.sub(r"^\[[^]]*\]\s*", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    specific = [line for line in lines if not line.startswith(_GENERIC)]
    return (specific or lines or [""])[0]


def _open_failure(path: Path, stderr: str) -> MediaError:
    last = last_error_line(stderr, path)
    if _looks_like_a_container(path):
        detail = "moov atom not found" if "moov atom not found" in stderr else last
        return MediaError(path, f"is truncated or damaged: ffmpeg cannot open it ({detail})")
    return MediaError(path, f"is not a video file (ffmpeg cannot read it: {last or 'unknown format'})")


def _normalise_rotation(value: Any) -> int:
    try:
        degrees = round(float(value))
    except (TypeError, ValueError):
        return 0
    return (round(degrees / 90) * 90) % 360


# --- ffprobe ---------------------------------------------------------------------------------


@dataclass
class _Header:
    format_name: str
    start_time: Fraction
    streams: list[dict[str, Any]]
    format_duration: Fraction | None
    probe_score: int | None = None  # ffprobe's confidence in format_name, 1..100 (None without ffprobe)


def _ffprobe_header(path: Path, ffmpeg: FFmpeg) -> _Header:
    assert ffmpeg.ffprobe
    done = run([ffmpeg.ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)])
    if done.returncode != 0:
        raise _open_failure(path, done.stderr)
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise MediaError(path, "cannot be probed: ffprobe returned no readable answer") from None
    fmt = data.get("format", {})
    return _Header(
        format_name=str(fmt.get("format_name", "")),
        start_time=Fraction(str(fmt.get("start_time") or 0)),
        streams=list(data.get("streams", [])),
        format_duration=_fraction(fmt.get("duration")),
        probe_score=_parse_int(str(fmt.get("probe_score", ""))),
    )


@dataclass
class _Packets:
    pts: list[int]  # presentation order, absolute ticks
    durations: list[int]
    all_count: int  # including packets the demuxer marks to discard
    decode_order_pts: list[int]
    stderr: str


def _parse_int(text: str) -> int | None:
    text = text.strip()
    if not text or text == "N/A":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _packet_time(*, pts_text: str, dts_text: str) -> int | None:
    """A packet's presentation time; its decode time where the container stores no pts."""
    stamp = _parse_int(pts_text)
    return stamp if stamp is not None else _parse_int(dts_text)


def _scan_timeout(path: Path) -> float:
    """A packet scan reads the whole file: its time limit grows with the file's size."""
    try:
        return timeout_for_bytes(path.stat().st_size)
    except OSError:
        return timeout_for_bytes(0)


def _ffprobe_packets(path: Path, ffmpeg: FFmpeg, index: int) -> _Packets:
    assert ffmpeg.ffprobe
    done = run(
        [ffmpeg.ffprobe, "-v", "error", "-select_streams", str(index),
         "-show_entries", "packet=pts,dts,duration,flags", "-of", "csv=p=0", str(path)],
        timeout=_scan_timeout(path),
    )
    if done.returncode != 0:
        raise MediaError(path, f"is truncated or damaged: reading its video failed ({done.tail(1)})")
    pts: list[int] = []
    durations: list[int] = []
    count = 0
    for line in done.stdout.decode("ascii", "replace").splitlines():
        parts = line.split(",")
        if len(parts) < 4:
            continue
        count += 1
        if "D" in parts[3]:
            continue
        stamp = _packet_time(pts_text=parts[0], dts_text=parts[1])
        if stamp is None:
            continue
        pts.append(stamp)
        durations.append(_parse_int(parts[2]) or 0)
    return _Packets(sorted(pts), durations, count, pts, done.stderr)


# --- ffmpeg alone ------------------------------------------------------------------------------

_STREAM_LINE = re.compile(r"^\s*Stream #0:(\d+)(?:\[[^]]*\])?(?:\(([^)]*)\))?: (Video|Audio|Subtitle|Data|Attachment): (\w+)")


def _ffmpeg_header(path: Path, ffmpeg: FFmpeg) -> tuple[_Header, str]:
    done = run([ffmpeg.ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)])
    text = done.stderr
    if "Input #0" not in text:
        raise _open_failure(path, text)
    format_name = re.search(r"Input #0, ([^ ]+), from", text)
    start = re.search(r"start: (-?[\d.]+)", text)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    streams: list[dict[str, Any]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = _STREAM_LINE.match(line)
        if not match:
            continue
        stream: dict[str, Any] = {
            "index": int(match.group(1)),
            "codec_type": match.group(3).lower(),
            "codec_name": match.group(4),
            "tags": {"language": match.group(2)} if match.group(2) else {},
            "disposition": {"attached_pic": int("(attached pic)" in line)},
        }
        if stream["codec_type"] == "video":
            size = re.search(r", (\d{2,5})x(\d{2,5})", line)
            if size:
                stream["width"], stream["height"] = int(size.group(1)), int(size.group(2))
            fmt = re.search(r"Video: [^,]+, (\w+)(?:\(([^)]*)\))?", line)
            if fmt:
                stream["pix_fmt"] = fmt.group(1)
                details = [part.strip() for part in (fmt.group(2) or "").split(",")]
                if details and details[0] in ("tv", "pc"):
                    stream["color_range"] = details.pop(0)
                if details and details[0] not in ("progressive", "top first", "bottom first", "top coded first (swapped)"):
                    names = details[0].split("/")
                    stream["color_space"] = names[0]
                    stream["color_primaries"] = names[1] if len(names) > 1 else names[0]
                    stream["color_transfer"] = names[2] if len(names) > 2 else names[0]
            tbr = re.search(r", ([\d.]+)(k?) tbr", line)
            if tbr and float(tbr.group(1)) > 0:
                rate = Fraction(tbr.group(1)) * (1000 if tbr.group(2) else 1)
                stream["r_frame_rate"] = str(_snap_rate(rate))
            for follow in lines[number + 1 : number + 12]:
                if _STREAM_LINE.match(follow):
                    break
                rotation = re.search(r"rotation of (-?[\d.]+) degrees", follow)
                if rotation:
                    stream["side_data_list"] = [{"rotation": float(rotation.group(1))}]
        streams.append(stream)
    header = _Header(
        format_name=format_name.group(1) if format_name else "",
        start_time=Fraction(start.group(1)) if start else Fraction(0),
        streams=streams,
        format_duration=(
            Fraction(int(duration.group(1)) * 3600 + int(duration.group(2)) * 60) + Fraction(duration.group(3))
            if duration else None
        ),
    )
    return header, text


def _ffmpeg_packets(path: Path, ffmpeg: FFmpeg, index: int) -> tuple[_Packets, Fraction]:
    done = run(
        [ffmpeg.ffmpeg, *QUIET, "-v", "error", "-copyts", "-i", str(path), "-map", f"0:{index}", "-c", "copy",
         "-f", "framecrc", "-"],
        timeout=_scan_timeout(path),
    )
    if done.returncode != 0:
        raise MediaError(path, f"is truncated or damaged: reading its video failed ({done.tail(1)})")
    time_base = Fraction(1, 1000)
    pts: list[int] = []
    durations: list[int] = []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb"):
            time_base = Fraction(line.split(":", 1)[1].strip())
            continue
        if line.startswith("#") or not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 5:
            continue
        stamp = _packet_time(pts_text=parts[2], dts_text=parts[1])
        if stamp is None:
            continue
        pts.append(stamp)
        durations.append(_parse_int(parts[3]) or 0)
    return _Packets(sorted(pts), durations, len(pts), pts, done.stderr), time_base


# --- the probe -------------------------------------------------------------------------------


def _video_stream(path: Path, streams: list[dict[str, Any]]) -> dict[str, Any]:
    videos = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not videos:
        kinds = sorted({str(s.get("codec_type")) for s in streams if s.get("codec_type") != "video"})
        held = f" (it holds {' and '.join(kinds)} only)" if kinds else ""
        raise MediaError(path, f"has no video stream{held}")
    return videos[0]


def _others(streams: list[dict[str, Any]], kind: str) -> tuple[StreamInfo, ...]:
    return tuple(
        StreamInfo(
            index=int(s["index"]),
            kind=kind,
            codec=str(s.get("codec_name", "unknown")),
            language=(s.get("tags") or {}).get("language"),
        )
        for s in streams
        if s.get("codec_type") == kind
    )


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return _normalise_rotation(side["rotation"])
    tag = (stream.get("tags") or {}).get("rotate")
    return _normalise_rotation(-float(tag)) if tag is not None else 0


def _clean(value: Any) -> str | None:
    return None if value in (None, "", "unknown", "reserved", "unspecified") else str(value)


def probe(path: Path, *, ffmpeg: FFmpeg) -> VideoInfo:
    """Everything the pipeline needs to know about ``path``; ``MediaError`` says why it is unusable."""
    path = Path(path)
    size = _precheck(path)
    if ffmpeg.ffprobe:
        header = _ffprobe_header(path, ffmpeg)
    else:
        header, _ = _ffmpeg_header(path, ffmpeg)
    if STILL_IMAGE_FORMATS.search(header.format_name):
        raise MediaError(path, "is a still image, not a video")
    refusal = container_refusal(extension=path.suffix, format_name=header.format_name,
                                probe_score=header.probe_score)
    if refusal is not None:
        raise MediaError(path, refusal)
    stream = _video_stream(path, header.streams)
    index = int(stream["index"])
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError(path, "has a video stream of unknown size (damaged header)")

    if ffmpeg.ffprobe:
        time_base = _fraction(stream.get("time_base")) or Fraction(1, 1000)
        packets = _ffprobe_packets(path, ffmpeg, index)
    else:
        packets, time_base = _ffmpeg_packets(path, ffmpeg, index)
    if not packets.pts:
        raise MediaError(path, "has a video stream without any frames (truncated or damaged)")
    refusal = frames_refusal(frame_count=len(packets.pts), duration=header.format_duration)
    if refusal is not None:
        raise MediaError(path, refusal)
    if any(marker in packets.stderr for marker in TRUNCATION_MARKERS):
        raise MediaError(path, f"is truncated: its video data ends early ({last_error_line(packets.stderr, path)})")
    declared = _parse_int(str(stream.get("nb_frames", "")))
    if declared and ("mp4" in header.format_name or "mov" in header.format_name) and packets.all_count < declared:
        raise MediaError(path, f"is truncated: its index lists {declared} frames but only {packets.all_count} are there")

    first = packets.pts[0]
    relative = [stamp - first for stamp in packets.pts]
    for i in range(1, len(relative)):  # broken files repeat timestamps; keep them strictly increasing
        if relative[i] <= relative[i - 1]:
            relative[i] = relative[i - 1] + 1
    deltas = [b - a for a, b in zip(relative, relative[1:])]
    last_duration = packets.durations[packets.decode_order_pts.index(packets.pts[-1])] if packets.durations else 0
    if last_duration <= 0:
        last_duration = round(statistics.median(deltas)) if deltas else 0
    if last_duration <= 0:
        rate = _fraction(stream.get("r_frame_rate")) or Fraction(25)
        last_duration = max(1, round(1 / (rate * time_base)))
    duration = (relative[-1] + last_duration) * time_base
    count = len(relative)
    vfr = is_vfr(relative, time_base)
    avg = Fraction(count) / duration
    r_rate = _fraction(stream.get("r_frame_rate"))
    if r_rate is None or r_rate > 1000:
        r_rate = _snap_rate(1 / (Fraction(round(statistics.median(deltas))) * time_base)) if deltas else avg
    if not vfr and abs(r_rate - avg) / avg > Fraction(1, 100):
        r_rate = _snap_rate(avg)
    pix_fmt = str(stream.get("pix_fmt") or "yuv420p")
    raw_bits = _parse_int(str(stream.get("bits_per_raw_sample", "")))
    depth = max(bit_depth_of(pix_fmt), raw_bits if raw_bits and raw_bits <= 16 else 0)
    has_b_frames = int(stream.get("has_b_frames") or 0) > 0 or packets.decode_order_pts != sorted(packets.decode_order_pts)
    return VideoInfo(
        path=path,
        format_name=header.format_name,
        codec=str(stream.get("codec_name", "unknown")),
        width=width,
        height=height,
        r_frame_rate=r_rate,
        avg_frame_rate=avg,
        frame_count=count,
        duration=duration,
        time_base=time_base,
        pts=tuple(relative),
        first_pts=first * time_base,
        start_time=header.start_time,
        vfr=vfr,
        pix_fmt=pix_fmt,
        bit_depth=depth,
        rotation=_rotation(stream),
        color_range=_clean(stream.get("color_range")),
        color_space=_clean(stream.get("color_space")),
        color_transfer=_clean(stream.get("color_transfer")),
        color_primaries=_clean(stream.get("color_primaries")),
        has_b_frames=has_b_frames,
        video_index=index,
        audio=_others(header.streams, "audio"),
        subtitles=_others(header.streams, "subtitle"),
        size_bytes=size,
    )


def count_video_packets(path: Path, *, ffmpeg: FFmpeg) -> int | None:
    """Frames in the first video stream of a file midframe wrote; None when it cannot be read whole."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        if ffmpeg.ffprobe:
            packets = _ffprobe_packets(path, ffmpeg, 0)
        else:
            packets, _ = _ffmpeg_packets(path, ffmpeg, 0)
    except MediaError:
        return None
    if any(marker in packets.stderr for marker in TRUNCATION_MARKERS):
        return None
    return len(packets.pts)
