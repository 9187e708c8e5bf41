"""The encode pipe: RGB frames in, one video file out, with the source's colour signalling.

``EncodeSpec`` says everything about how frames are encoded (codec, quality, pixel format, colour
matrix and tags, rate); ``FrameWriter`` runs one ffmpeg that reads raw frames on stdin. ``finish()``
checks ffmpeg's exit code: a crash is a ``TransientError`` carrying ffmpeg's last stderr lines, a
full disk an ``OutputError``. ``abort()`` kills it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from midframe.engine.ffmpeg import QUIET, FFmpeg, FFmpegProcess, looks_like_disk_full
from midframe.errors import OutputError, TransientError

CRF_CODECS = frozenset({"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"})
NAMED_PRESET_CODECS = frozenset({"libx264", "libx264rgb", "libx265"})
NUMERIC_PRESET_CODECS = frozenset({"libsvtav1"})
NVENC_CODECS = frozenset({"h264_nvenc", "hevc_nvenc", "av1_nvenc"})
# ffprobe's colour-space names -> the swscale matrix names of the scale filter.
SCALE_MATRIX = {
    "bt709": "bt709",
    "bt470bg": "bt601",
    "smpte170m": "bt601",
    "fcc": "fcc",
    "smpte240m": "smpte240m",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
}
# Muxers of the work segments: mp4/mov keep exact frame timing through their track timescale.
SEGMENT_FORMATS = {"mp4": ("mp4", ".mp4"), "m4v": ("mp4", ".mp4"), "mov": ("mov", ".mov")}
DEFAULT_SEGMENT_FORMAT = ("matroska", ".mkv")


def is_rgb_pix_fmt(pix_fmt: str) -> bool:
    name = pix_fmt.lower()
    return name.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr"))


def is_subsampled(pix_fmt: str) -> bool:
    name = pix_fmt.lower()
    return name.startswith(("yuv420", "yuvj420", "yuv422", "yuvj422", "nv12", "nv16", "nv21", "p010", "p016", "yuv411", "yuv410"))


def segment_format(destination_suffix: str) -> tuple[str, str]:
    """(muxer, extension) of the work segments for a given output file extension."""
    return SEGMENT_FORMATS.get(destination_suffix.lower().lstrip("."), DEFAULT_SEGMENT_FORMAT)


def track_timescale(fps: Fraction) -> int:
    """An mp4 timescale in which one frame lasts a whole number of ticks (and at least 10000/s)."""
    return fps.numerator * max(1, math.ceil(10000 / fps.numerator))


@dataclass(frozen=True)
class EncodeSpec:
    width: int
    height: int
    fps: Fraction
    input_pix_fmt: str  # rgb24 | rgb48le
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    color_range: str | None = None
    color_space: str | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    muxer: str = "matroska"

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16) if self.input_pix_fmt.startswith("rgb48") else np.dtype(np.uint8)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = str(self.fps)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncodeSpec:
        return cls(**{**data, "fps": Fraction(data["fps"])})

    def filters(self) -> list[str]:
        chain: list[str] = []
        if is_subsampled(self.pix_fmt) and (self.width % 2 or self.height % 2):
            chain.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")
        if not is_rgb_pix_fmt(self.pix_fmt):
            options = [f"out_range={'pc' if self.color_range == 'pc' else 'tv'}"]
            matrix = SCALE_MATRIX.get(self.color_space or "")
            if matrix:
                options.insert(0, f"out_color_matrix={matrix}")
            chain.append("scale=" + ":".join(options))
        chain.append(f"format={self.pix_fmt}")
        return chain

    def codec_args(self) -> list[str]:
        args = ["-c:v", self.codec]
        if self.codec in CRF_CODECS:
            args += ["-crf", str(self.crf)]
            if self.codec in ("libvpx", "libvpx-vp9"):
                args += ["-b:v", "0"]
        elif self.codec in NVENC_CODECS:
            args += ["-rc", "vbr", "-cq", str(self.crf)]
        if self.codec in NAMED_PRESET_CODECS or self.codec in NVENC_CODECS:
            args += ["-preset", self.preset]
        elif self.codec in NUMERIC_PRESET_CODECS and self.preset.isdigit():
            args += ["-preset", self.preset]
        return args

    def color_args(self) -> list[str]:
        if is_rgb_pix_fmt(self.pix_fmt):
            return []
        args: list[str] = ["-color_range", "pc" if self.color_range == "pc" else "tv"]
        for option, value in (
            ("-colorspace", self.color_space),
            ("-color_trc", self.color_transfer),
            ("-color_primaries", self.color_primaries),
        ):
            if value:
                args += [option, value]
        return args

    def output_args(self) -> list[str]:
        """Everything after ``-i pipe:0``: filters, codec, colour tags, muxer options."""
        args = ["-vf", ",".join(self.filters()), *self.codec_args(), "-pix_fmt", self.pix_fmt, *self.color_args(),
                "-an", "-sn", "-dn"]
        if self.muxer in ("mp4", "mov"):
            args += ["-video_track_timescale", str(track_timescale(self.fps))]
        return args + ["-f", self.muxer]

    def command(self, ffmpeg: FFmpeg, output: Path | str, *, source: list[str] | None = None,
                threads: int | None = None) -> list[str]:
        """The encoder's command; ``source`` replaces the raw-frame pipe input (preflight checks);
        ``threads`` caps the encoder's and the filters' threads (see ``midframe.engine.threads``)."""
        inputs = source or [
            "-f", "rawvideo", "-pix_fmt", self.input_pix_fmt, "-s", f"{self.width}x{self.height}",
            "-framerate", str(self.fps), "-i", "pipe:0",
        ]
        limits = ["-filter_threads", str(threads)] if threads else []
        encoder = ["-threads", str(threads)] if threads else []
        return [ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", *limits, *inputs, *self.output_args(), *encoder,
                str(output)]


def encoder_failure(path: Path, code: int, stderr_tail: str, what: str = "encoding") -> Exception:
    if looks_like_disk_full(stderr_tail):
        return OutputError(path.parent, "disk full: no space left on device")
    detail = stderr_tail.strip() or "no message"
    return TransientError(f"ffmpeg failed {what} {path} (exit code {code}): {detail}")


class FrameWriter:
    """One encoder process writing ``path`` from frames given to ``write``."""

    def __init__(self, path: Path, spec: EncodeSpec, *, ffmpeg: FFmpeg, threads: int | None = None) -> None:
        self.path = Path(path)
        self.spec = spec
        self.frames = 0
        self._expected_bytes = spec.width * spec.height * 3 * spec.dtype.itemsize
        self._proc = FFmpegProcess(spec.command(ffmpeg, self.path, threads=threads), stdin=True, name="encode")

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.spec.frame_shape or frame.dtype != self.spec.dtype:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not match the encoder's "
                f"{self.spec.frame_shape} {self.spec.dtype}"
            )
        data = memoryview(np.ascontiguousarray(frame)).cast("B")
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, OSError, ValueError):
            code = self._proc.wait()
            raise encoder_failure(self.path, code, self._proc.stderr_tail()) from None
        self.frames += 1

    def close_input(self) -> None:
        """Signal the end of the frames; ffmpeg goes on writing the file (see ``running``, ``finish``)."""
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def finish(self, timeout: float = 600.0) -> None:
        """Close the input, wait for ffmpeg to write the file; raise if it failed."""
        self.close_input()
        try:
            code = self._proc.wait(timeout)
        except Exception:
            self._proc.kill()
            raise
        if code != 0:
            raise encoder_failure(self.path, code, self._proc.stderr_tail())

    def abort(self) -> None:
        self._proc.kill()
