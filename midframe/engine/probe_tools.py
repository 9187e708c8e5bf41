"""Raw facts from ffprobe, or from ffmpeg alone where a bundled ffmpeg has no ffprobe.

``read_header`` gives the container's format and streams (ffprobe's JSON, or the same keys parsed
from ``ffmpeg -i``); ``read_packets`` lists one stream's packet times (``ffprobe -show_entries
packet``, or ``ffmpeg -c copy -f framecrc``, which is just as exact); ``first_frame_side_data``
gives the side data of a stream's first frame (HDR10 metadata lives there in HEVC). Also the
helpers that turn an ffmpeg log into the line worth showing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from midframe.engine.ffmpeg import QUIET, FFmpeg, timeout_for_bytes
from midframe.engine.rates import snap_rate
from midframe.errors import MediaError
from midframe.regular import open_regular

# Where a truncated file still opens, packet reading ends with one of these.
TRUNCATION_MARKERS = ("partial file", "File ended prematurely", "Truncating packet")


def positive_fraction(text: Any) -> Fraction | None:
    if text in (None, "", "N/A", "0/0"):
        return None
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None



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


# Encoders that log on their own whatever ffmpeg's -v says (SVT-AV1's banner, x265 below log-level).
_ENCODER_CHATTER = re.compile(r"^(Svt\[info\]|x265 \[info\]|x264 \[info\])")


def first_error_line(stderr: str) -> str:
    """The first specific line of an ffmpeg error log (what went wrong, not that it failed)."""
    lines = [re.sub(r"^\[[^]]*\]\s*", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not _ENCODER_CHATTER.match(line)]
    specific = [line for line in lines if not line.startswith(_GENERIC)]
    return (specific or lines or [""])[0]


def open_failure(path: Path, stderr: str) -> MediaError:
    last = last_error_line(stderr, path)
    if _looks_like_a_container(path):
        detail = "moov atom not found" if "moov atom not found" in stderr else last
        return MediaError(path, f"is truncated or damaged: ffmpeg cannot open it ({detail})", incomplete=True)
    return MediaError(path, f"is not a video file (ffmpeg cannot read it: {last or 'unknown format'})")


def normalise_rotation(value: Any) -> int:
    try:
        degrees = round(float(value))
    except (TypeError, ValueError):
        return 0
    return (round(degrees / 90) * 90) % 360


# --- ffprobe ---------------------------------------------------------------------------------


@dataclass
class RawHeader:
    format_name: str
    start_time: Fraction
    streams: list[dict[str, Any]]
    format_duration: Fraction | None
    probe_score: int | None = None  # ffprobe's confidence in format_name, 1..100 (None without ffprobe)


def _ffprobe_header(path: Path, ffmpeg: FFmpeg) -> RawHeader:
    assert ffmpeg.ffprobe
    done = ffmpeg.run([ffmpeg.ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)])
    if done.returncode != 0:
        raise open_failure(path, done.stderr)
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise MediaError(path, "cannot be probed: ffprobe returned no readable answer") from None
    fmt = data.get("format", {})
    return RawHeader(
        format_name=str(fmt.get("format_name", "")),
        start_time=Fraction(str(fmt.get("start_time") or 0)),
        streams=list(data.get("streams", [])),
        format_duration=positive_fraction(fmt.get("duration")),
        probe_score=parse_int(str(fmt.get("probe_score", ""))),
    )


@dataclass
class RawPackets:
    pts: list[int]  # presentation order, absolute ticks
    durations: list[int]
    all_count: int  # including packets the demuxer marks to discard
    decode_order_pts: list[int]
    stderr: str
    discarded_pts: list[int] = field(default_factory=list)  # of the packets marked to discard (priming)


def parse_int(text: str) -> int | None:
    text = text.strip()
    if not text or text == "N/A":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _packet_time(*, pts_text: str, dts_text: str) -> int | None:
    """A packet's presentation time; its decode time where the container stores no pts."""
    stamp = parse_int(pts_text)
    return stamp if stamp is not None else parse_int(dts_text)


def _scan_timeout(path: Path) -> float:
    """A packet scan reads the whole file: its time limit grows with the file's size."""
    try:
        return timeout_for_bytes(path.stat().st_size)
    except OSError:
        return timeout_for_bytes(0)


def _ffprobe_packets(path: Path, ffmpeg: FFmpeg, index: int | None) -> dict[int, RawPackets]:
    """Packets of stream ``index`` (None: of every stream, in one pass), by stream index."""
    assert ffmpeg.ffprobe
    select = ["-select_streams", str(index)] if index is not None else []
    done = ffmpeg.run(
        [ffmpeg.ffprobe, "-v", "error", *select,
         "-show_entries", "packet=stream_index,pts,dts,duration,flags", "-of", "csv=p=0", str(path)],
        timeout=_scan_timeout(path),
    )
    if done.returncode != 0:
        raise MediaError(path, f"is truncated or damaged: reading its video failed ({done.tail(1)})", incomplete=True)
    rows: dict[int, list[list[str]]] = {}
    for line in done.stdout.decode("ascii", "replace").splitlines():
        parts = line.split(",")
        stream = parse_int(parts[0]) if len(parts) >= 5 else None
        if stream is not None:
            rows.setdefault(stream, []).append(parts[1:])
    found = {stream: _collect(lines, done.stderr) for stream, lines in rows.items()}
    if index is not None and index not in found:
        found[index] = _collect([], done.stderr)
    return found


def _collect(rows: list[list[str]], stderr: str) -> RawPackets:
    """One stream's packets from ``pts,dts,duration,flags`` rows, in file (decode) order."""
    pts: list[int] = []
    durations: list[int] = []
    discarded: list[int] = []
    for parts in rows:
        stamp = _packet_time(pts_text=parts[0], dts_text=parts[1])
        if stamp is None:
            continue
        if "D" in parts[3]:
            discarded.append(stamp)
            continue
        pts.append(stamp)
        durations.append(parse_int(parts[2]) or 0)
    return RawPackets(sorted(pts), durations, len(rows), pts, stderr, discarded)


# --- ffmpeg alone ------------------------------------------------------------------------------

_STREAM_LINE = re.compile(r"^\s*Stream #0:(\d+)(?:\[[^]]*\])?(?:\(([^)]*)\))?: (Video|Audio|Subtitle|Data|Attachment): (\w+)")


_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _channels(line: str) -> int | None:
    """Channels of an ``ffmpeg -i`` audio line: ``48000 Hz, stereo, fltp`` or ``..., 3 channels, ...``."""
    match = re.search(r" Hz, ([^,]+)", line)
    if not match:
        return None
    layout = match.group(1).strip()
    count = re.match(r"(\d+) channels", layout)
    return int(count.group(1)) if count else _LAYOUT_CHANNELS.get(layout.split("(")[0])


def _ffmpeg_header(path: Path, ffmpeg: FFmpeg) -> tuple[RawHeader, str]:
    done = ffmpeg.run([ffmpeg.ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)])
    text = done.stderr
    if "Input #0" not in text:
        raise open_failure(path, text)
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
                stream["r_frame_rate"] = str(snap_rate(rate))
            for follow in lines[number + 1 : number + 12]:
                if _STREAM_LINE.match(follow):
                    break
                rotation = re.search(r"rotation of (-?[\d.]+) degrees", follow)
                if rotation:
                    stream["side_data_list"] = [{"rotation": float(rotation.group(1))}]
        elif stream["codec_type"] == "audio":
            channels = _channels(line)
            if channels:
                stream["channels"] = channels
        streams.append(stream)
    header = RawHeader(
        format_name=format_name.group(1) if format_name else "",
        start_time=Fraction(start.group(1)) if start else Fraction(0),
        streams=streams,
        format_duration=(
            Fraction(int(duration.group(1)) * 3600 + int(duration.group(2)) * 60) + Fraction(duration.group(3))
            if duration else None
        ),
    )
    return header, text


def _ffmpeg_packets(path: Path, ffmpeg: FFmpeg, index: int | None) -> dict[int, tuple[RawPackets, Fraction]]:
    """Packets and time base of stream ``index`` (None: every stream, in one pass), by stream index."""
    done = ffmpeg.run(
        [ffmpeg.ffmpeg, *QUIET, "-v", "error", "-copyts", "-i", str(path), "-map", "0" if index is None else f"0:{index}",
         "-c", "copy", "-f", "framecrc", "-"],
        timeout=_scan_timeout(path),
    )
    if done.returncode != 0:
        raise MediaError(path, f"is truncated or damaged: reading its video failed ({done.tail(1)})", incomplete=True)
    bases: dict[int, Fraction] = {}
    rows: dict[int, list[list[str]]] = {}
    for line in done.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb"):  # "#tb 0: 1/25", numbered by output stream
            number, base = line[3:].split(":", 1)
            bases[int(number)] = Fraction(base.strip())
            continue
        if line.startswith("#") or not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        if len(parts) >= 5 and parse_int(parts[0]) is not None:
            # framecrc: stream, dts, pts, duration, size, crc; no flags (discarded packets are not written)
            rows.setdefault(int(parts[0]), []).append([parts[2], parts[1], parts[3], ""])
    outputs = sorted(set(rows) | set(bases))
    inputs = [index] if index is not None else outputs  # with -map 0, output stream n is input stream n
    return {source: (_collect(rows.get(n, []), done.stderr), bases.get(n, Fraction(1, 1000)))
            for n, source in zip(outputs or [0], inputs)}


# --- the readers -----------------------------------------------------------------------------


def read_header(path: Path, ffmpeg: FFmpeg) -> RawHeader:
    """Format and streams; ``MediaError`` when ffmpeg cannot open the file."""
    if ffmpeg.ffprobe:
        return _ffprobe_header(path, ffmpeg)
    return _ffmpeg_header(path, ffmpeg)[0]


def read_packets(path: Path, ffmpeg: FFmpeg, index: int, time_base: Fraction | None) -> tuple[RawPackets, Fraction]:
    """Packet times of stream ``index`` and their time base (the stream's, from the header, with ffprobe)."""
    if ffmpeg.ffprobe:
        return _ffprobe_packets(path, ffmpeg, index)[index], time_base or Fraction(1, 1000)
    return _ffmpeg_packets(path, ffmpeg, index)[index]


def read_all_packets(path: Path, ffmpeg: FFmpeg, time_bases: dict[int, Fraction]) -> dict[int, tuple[RawPackets, Fraction]]:
    """Packet times of every stream, read in one pass (``time_bases``: each stream's, from the header)."""
    if ffmpeg.ffprobe:
        return {index: (packets, time_bases.get(index) or Fraction(1, 1000))
                for index, packets in _ffprobe_packets(path, ffmpeg, None).items()}
    return _ffmpeg_packets(path, ffmpeg, None)


def first_frame_side_data(path: Path, ffmpeg: FFmpeg, index: int) -> list[dict[str, Any]]:
    """The side data of stream ``index``'s first decoded frame (empty without ffprobe or on failure)."""
    if not ffmpeg.ffprobe:
        return []
    done = ffmpeg.run([ffmpeg.ffprobe, "-v", "error", "-select_streams", str(index), "-read_intervals", "%+#1",
                "-show_frames", "-of", "json", str(path)])
    if done.returncode != 0:
        return []
    try:
        frames = json.loads(done.stdout).get("frames") or []
    except json.JSONDecodeError:
        return []
    return list(frames[0].get("side_data_list") or []) if frames else []
