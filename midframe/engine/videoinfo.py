"""What a video file holds, as the probe found it: the ``VideoInfo`` record and its small pure helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import overload

from midframe.engine.colour import Conversion, HdrMetadata, conversion_for


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream the output keeps: absolute stream index, kind, codec name."""

    index: int
    kind: str  # "audio" | "subtitle"
    codec: str
    language: str | None = None
    channels: int = 0  # audio only; 0 when unknown


@dataclass(frozen=True)
class StreamSpan:
    """Where one stream of a file starts and ends, in seconds on the file's clock.

    ``first``/``last``: the first and last packet's time, counting packets marked to discard (an
    encoder's priming samples; containers disagree on how to store them, but a copied stream keeps
    the same packets). ``start``/``end``: what plays, from the first kept packet to the end of the
    last (whose stored length, too, depends on the container).
    """

    index: int
    kind: str  # video | audio | subtitle | data
    codec: str
    first: Fraction
    last: Fraction
    start: Fraction
    end: Fraction
    packets: int
    longest: Fraction  # the longest packet


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
    nominal_fps: Fraction | None = None  # vfr only: the rate of a constant grid with dropped frames
    hdr: HdrMetadata | None = None  # HDR10 mastering display / content light level
    # Where each audio stream starts and ends, from the probe's packet pass (for verification).
    audio_spans: tuple[StreamSpan, ...] = field(default=(), repr=False)

    @property
    def timestamps(self) -> Timestamps:
        return Timestamps(self.pts, self.time_base)

    @property
    def fps(self) -> Fraction:
        """The nominal rate: r_frame_rate for constant-rate video, the grid's rate for constant-rate
        video with dropped frames, else the average."""
        if not self.vfr and self.r_frame_rate > 0:
            return self.r_frame_rate
        return self.nominal_fps or self.avg_frame_rate

    @property
    def high_bit_depth(self) -> bool:
        return self.bit_depth > 8

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)

    @property
    def conversion(self) -> Conversion:
        """The YUV <-> RGB mapping its tags (or, untagged, its size) call for."""
        return conversion_for(width=self.width, height=self.height, pix_fmt=self.pix_fmt,
                              color_space=self.color_space, color_range=self.color_range)


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
