"""What a video file holds: size, exact rates, every frame's timestamp, streams, colour, HDR, rotation.

Frame counts and timestamps come from reading the video stream's packets (demux only, no
decoding: fast), never from header fields such as ``nb_frames``, which are often missing or wrong.
Timestamps are exact ``Fraction`` seconds (pts * time_base), the first frame at 0; what they say
about the rate is worked out in ``midframe.engine.rates``.

``probe`` prefers ffprobe; with a bundled ffmpeg that has no ffprobe it parses ``ffmpeg -i`` and
lists packets with ``-c copy -f framecrc``, which is just as exact (HDR10 metadata then stays unread).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from fractions import Fraction
from pathlib import Path
from typing import Any

from midframe.engine.colour import HDR_TRANSFERS, HdrMetadata, hdr_from_side_data
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.probe_tools import (
    TRUNCATION_MARKERS,
    RawHeader,
    RawPackets,
    first_frame_side_data,
    last_error_line,
    normalise_rotation,
    parse_int,
    positive_fraction,
    read_all_packets,
    read_header,
    read_packets,
)

__all__ = ["StreamSpan", "count_video_packets", "probe", "sniff", "stream_spans"]
from midframe.engine.rates import timing
from midframe.engine.sniff import container_refusal, frames_refusal
from midframe.engine.videoinfo import StreamInfo, StreamSpan, VideoInfo, bit_depth_of
from midframe.errors import MediaError
from midframe.regular import NotRegularFile, open_regular

STILL_IMAGE_FORMATS = re.compile(r"(^|,)(image2|png_pipe|jpeg_pipe|webp_pipe|bmp_pipe|tiff_pipe)")
# Image formats that may hold an animation: a video when they hold more than one frame.
ANIMATION_FORMATS = re.compile(r"(^|,)(gif|apng)($|,)")


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
        raise MediaError(path, "is empty (0 bytes)", incomplete=True)
    return size


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
            channels=int(s.get("channels") or 0) if kind == "audio" else 0,
        )
        for s in streams
        if s.get("codec_type") == kind
    )


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return normalise_rotation(side["rotation"])
    tag = (stream.get("tags") or {}).get("rotate")
    return normalise_rotation(-float(tag)) if tag is not None else 0


def _clean(value: Any) -> str | None:
    return None if value in (None, "", "unknown", "reserved", "unspecified") else str(value)


def _hdr(path: Path, ffmpeg: FFmpeg, stream: dict[str, Any], index: int) -> HdrMetadata | None:
    """HDR10 metadata of an HDR stream: the container's (stream side data), else its first frame's."""
    if _clean(stream.get("color_transfer")) not in HDR_TRANSFERS:
        return None
    return hdr_from_side_data(list(stream.get("side_data_list") or [])) or hdr_from_side_data(
        first_frame_side_data(path, ffmpeg, index))


def _looked_at(path: Path, ffmpeg: FFmpeg) -> tuple[int, RawHeader, dict[str, Any]]:
    """The checks that need only the file's header: its size, header and first video stream."""
    size = _precheck(path)
    header = read_header(path, ffmpeg)
    if STILL_IMAGE_FORMATS.search(header.format_name):
        raise MediaError(path, "is a still image, not a video")
    refusal = container_refusal(extension=path.suffix, format_name=header.format_name,
                                probe_score=header.probe_score)
    if refusal is not None:
        raise MediaError(path, refusal)
    stream = _video_stream(path, header.streams)
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError(path, "has a video stream of unknown size (damaged header)")
    return size, header, stream


def sniff(path: Path, *, ffmpeg: FFmpeg) -> None:
    """The quick part of :func:`probe` (one look at the header, no packets read): ``MediaError`` when
    ``path`` is plainly not a video (text, a still image, a container its name does not name, no video
    stream). The daemon asks this as a file settles, so a non-video fails then, not at its turn."""
    _looked_at(Path(path), ffmpeg)


def probe(path: Path, *, ffmpeg: FFmpeg) -> VideoInfo:
    """Everything the pipeline needs to know about ``path``; ``MediaError`` says why it is unusable."""
    path = Path(path)
    size, header, stream = _looked_at(path, ffmpeg)
    index = int(stream["index"])
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)

    packets, time_base, audio_spans = _scan(path, ffmpeg, header, index)
    if not packets.pts:
        raise MediaError(path, "has a video stream without any frames (truncated or damaged)", incomplete=True)
    if ANIMATION_FORMATS.search(header.format_name) and len(packets.pts) < 2:
        raise MediaError(path, "is a still image, not a video")
    refusal = frames_refusal(frame_count=len(packets.pts), duration=header.format_duration)
    if refusal is not None:
        raise MediaError(path, refusal)
    if any(marker in packets.stderr for marker in TRUNCATION_MARKERS):
        raise MediaError(path, f"is truncated: its video data ends early ({last_error_line(packets.stderr, path)})",
                         incomplete=True)
    declared = parse_int(str(stream.get("nb_frames", "")))
    if declared and ("mp4" in header.format_name or "mov" in header.format_name) and packets.all_count < declared:
        raise MediaError(path, f"is truncated: its index lists {declared} frames but only {packets.all_count} are there",
                         incomplete=True)

    last = packets.durations[packets.decode_order_pts.index(packets.pts[-1])] if packets.durations else 0
    found = timing(pts=packets.pts, last_duration=last, time_base=time_base,
                   declared_rate=positive_fraction(stream.get("r_frame_rate")))
    pix_fmt = str(stream.get("pix_fmt") or "yuv420p")
    raw_bits = parse_int(str(stream.get("bits_per_raw_sample", "")))
    depth = max(bit_depth_of(pix_fmt), raw_bits if raw_bits and raw_bits <= 16 else 0)
    has_b_frames = int(stream.get("has_b_frames") or 0) > 0 or packets.decode_order_pts != sorted(packets.decode_order_pts)
    return VideoInfo(
        path=path,
        format_name=header.format_name,
        codec=str(stream.get("codec_name", "unknown")),
        width=width,
        height=height,
        r_frame_rate=found.r_frame_rate,
        avg_frame_rate=found.avg_frame_rate,
        frame_count=len(found.pts),
        duration=found.duration,
        time_base=time_base,
        pts=found.pts,
        first_pts=packets.pts[0] * time_base,
        start_time=header.start_time,
        vfr=found.vfr,
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
        nominal_fps=found.nominal_fps,
        hdr=_hdr(path, ffmpeg, stream, index),
        audio_spans=audio_spans,
    )


def _scan(path: Path, ffmpeg: FFmpeg, header: RawHeader,
          index: int) -> tuple[RawPackets, Fraction, tuple[StreamSpan, ...]]:
    """The one packet pass over the source: the video stream ``index``'s packets and time base, and where
    each audio stream starts and ends (what verification compares the output with), so nothing reads
    the whole source again to learn them."""
    bases = {int(s["index"]): positive_fraction(s.get("time_base")) for s in header.streams}
    audio = [s for s in header.streams if s.get("codec_type") == "audio" and int(s["index"]) != index]
    read = read_all_packets(path, ffmpeg, {i: base for i, base in bases.items() if base},
                            only=[index, *(int(s["index"]) for s in audio)])
    packets, time_base = read[index]
    spans = tuple(_span(int(s["index"]), s, *read[int(s["index"])]) for s in audio)
    return packets, time_base, spans


def count_video_packets(path: Path, *, ffmpeg: FFmpeg) -> int | None:
    """Frames in the first video stream of a file midframe wrote; None when it cannot be read whole."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        packets, _ = read_packets(path, ffmpeg, 0, None)
    except MediaError:
        return None
    if any(marker in packets.stderr for marker in TRUNCATION_MARKERS):
        return None
    return len(packets.pts)


def stream_spans(path: Path, *, ffmpeg: FFmpeg, only: Collection[int] | None = None) -> list[StreamSpan]:
    """The streams of ``path`` (those in ``only``, else all) with the times of their packets
    (``StreamSpan``), read in one pass however many streams there are."""
    header: RawHeader = read_header(path, ffmpeg)
    bases = {int(s["index"]): positive_fraction(s.get("time_base")) for s in header.streams}
    known = {index: base for index, base in bases.items() if base}
    kinds = {int(s["index"]): s.get("codec_type") for s in header.streams}
    wanted = None if only is None else [i for i in only if i in bases]
    read = read_all_packets(path, ffmpeg, known, only=wanted,
                            audio_only=wanted is not None and all(kinds[i] == "audio" for i in wanted))
    spans: list[StreamSpan] = []
    for stream in header.streams:
        index = int(stream["index"])
        if index not in read:
            if only is None:
                zero = Fraction(0)
                spans.append(StreamSpan(index, str(stream.get("codec_type")), str(stream.get("codec_name")),
                                        zero, zero, zero, zero, 0, zero))
            continue
        packets, time_base = read[index]
        spans.append(_span(index, stream, packets, time_base))
    return spans


def _span(index: int, stream: dict[str, Any], packets: RawPackets, time_base: Fraction) -> StreamSpan:
    kind, codec = str(stream.get("codec_type")), str(stream.get("codec_name"))
    if not packets.pts:
        zero = Fraction(0)
        return StreamSpan(index, kind, codec, zero, zero, zero, zero, 0, zero)
    every = packets.pts + packets.discarded_pts
    ends = [pts + duration for pts, duration in zip(packets.decode_order_pts, packets.durations)]
    return StreamSpan(
        index=index,
        kind=kind,
        codec=codec,
        first=min(every) * time_base,
        last=max(every) * time_base,
        start=packets.pts[0] * time_base,
        end=max(ends + packets.pts) * time_base,
        packets=len(packets.pts),
        longest=max(packets.durations, default=0) * time_base,
    )
