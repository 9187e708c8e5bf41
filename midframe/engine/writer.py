"""The encode pipe: RGB frames in, one video file out, with the source's colour signalling.

``EncodeSpec`` says everything about how frames are encoded (codec, quality, speed, pixel format,
the RGB -> YUV conversion, colour tags, HDR parameters, rate); ``FrameWriter`` runs one ffmpeg that
reads raw frames on stdin. ``finish()``
checks ffmpeg's exit code: a failure is a ``TransientError`` carrying ffmpeg's last stderr lines, a
death by a signal or a stall (no progress while a frame was written or its end awaited) a
``ChildFailed``, a full disk an ``OutputError``. ``abort()`` kills it.
"""

from __future__ import annotations

import errno
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from midframe.engine.colour import SMOOTH_UPSAMPLE, Conversion, is_rgb_pix_fmt, is_subsampled
from midframe.engine.ffmpeg import QUIET, FFmpeg, FFmpegProcess, looks_like_disk_full
from midframe.errors import OutputError, TransientError

CRF_CODECS = frozenset({"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"})
NAMED_PRESET_CODECS = frozenset({"libx264", "libx264rgb", "libx265"})
NVENC_CODECS = frozenset({"h264_nvenc", "hevc_nvenc", "av1_nvenc"})
# x264's preset names for encoders that count their speed instead: libvpx/libaom -cpu-used, SVT-AV1 -preset.
CPU_USED = {"placebo": 0, "veryslow": 0, "slower": 1, "slow": 1, "medium": 2, "fast": 3, "faster": 4, "veryfast": 5,
            "superfast": 6, "ultrafast": 8}
SVT_PRESET = {"placebo": 2, "veryslow": 3, "slower": 4, "slow": 5, "medium": 6, "fast": 8, "faster": 9, "veryfast": 10,
              "superfast": 11, "ultrafast": 12}
# Muxers of the work segments: mp4/mov keep exact frame timing through their track timescale.
SEGMENT_FORMATS = {"mp4": ("mp4", ".mp4"), "m4v": ("mp4", ".mp4"), "mov": ("mov", ".mov")}
DEFAULT_SEGMENT_FORMAT = ("matroska", ".mkv")


def segment_format(destination_suffix: str) -> tuple[str, str]:
    """(muxer, extension) of the work segments for a given output file extension."""
    return SEGMENT_FORMATS.get(destination_suffix.lower().lstrip("."), DEFAULT_SEGMENT_FORMAT)


def track_timescale(fps: Fraction) -> int:
    """An mp4 timescale in which one frame lasts a whole number of ticks (and at least 10000/s)."""
    return fps.numerator * max(1, math.ceil(10000 / fps.numerator))


def _speed(preset: str, table: dict[str, int]) -> str | None:
    if preset.lstrip("-").isdigit():
        return preset
    value = table.get(preset)
    return None if value is None else str(value)


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
    matrix: str = "bt709"  # the RGB -> YUV matrix (the same the reader decoded with)
    full_range: bool = False
    chroma_upsample: str = SMOOTH_UPSAMPLE  # how the reader upsampled chroma (see colour.Conversion)
    color_range: str | None = None  # tags written into the output
    color_space: str | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    encoder_params: tuple[str, ...] = ()  # x265 / SVT-AV1 parameters (HDR10 metadata)
    tag: str | None = None  # the video sample entry (hvc1)
    muxer: str = "matroska"
    # The source's rate, where x264/x265 should pace their rate control by it (see ``pacing_args``).
    pace_fps: Fraction | None = None

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16) if self.input_pix_fmt.startswith("rgb48") else np.dtype(np.uint8)

    @property
    def conversion(self) -> Conversion:
        return Conversion(matrix=self.matrix, full_range=self.full_range, upsample=self.chroma_upsample)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = str(self.fps)
        data["pace_fps"] = None if self.pace_fps is None else str(self.pace_fps)
        data["encoder_params"] = list(self.encoder_params)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncodeSpec:
        pace = data.get("pace_fps")
        return cls(**{**data, "fps": Fraction(data["fps"]), "pace_fps": None if pace is None else Fraction(pace),
                      "encoder_params": tuple(data.get("encoder_params", ()))})

    def filters(self) -> list[str]:
        chain: list[str] = []
        if is_subsampled(self.pix_fmt) and (self.width % 2 or self.height % 2):
            chain.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")
        chain.append(self.conversion.encode_filter(self.pix_fmt))
        return chain

    def codec_args(self) -> list[str]:
        args = ["-c:v", self.codec]
        if self.codec in CRF_CODECS:
            args += ["-crf", str(self.crf)]
            if self.codec in ("libvpx", "libvpx-vp9", "libaom-av1"):
                args += ["-b:v", "0"]
        elif self.codec in NVENC_CODECS:
            args += ["-rc", "vbr", "-cq", str(self.crf)]
        if self.codec in NAMED_PRESET_CODECS or self.codec in NVENC_CODECS:
            args += ["-preset", self.preset]
        elif self.codec == "libsvtav1":
            speed = _speed(self.preset, SVT_PRESET)
            args += ["-preset", speed] if speed else []
        elif self.codec in ("libvpx", "libvpx-vp9", "libaom-av1"):
            speed = _speed(self.preset, CPU_USED)
            args += ["-cpu-used", speed] if speed else []
            args += ["-row-mt", "1"]
        pace, tick_rate = self.pacing()
        if self.codec in ("libx264", "libx264rgb") and pace:
            args += ["-x264-params", pace]
        if self.codec == "libx265":
            args += ["-x265-params", ":".join(["log-level=error", *([pace] if pace else []), *self.encoder_params])]
        elif self.codec == "libsvtav1" and self.encoder_params:
            args += ["-svtav1-params", ":".join(self.encoder_params)]
        if tick_rate:
            args += ["-bsf:v", tick_rate]
        return args

    def pacing(self) -> tuple[str | None, str | None]:
        """(encoder parameter, bitstream filter) that pace x264/x265's rate control at the source's rate.

        Their CRF spends fewer bits per frame at a higher frame rate: at twice the rate the very frames
        midframe keeps from the source came out ~1.7 dB worse than a plain re-encode at the same CRF.
        Paced at the source's rate, every frame gets the bits it had there; the bitstream filter then
        writes the real rate back into the stream's timing information (the container's timestamps
        are the real ones throughout). VP9 and AV1 encoders do not depend on the rate.
        """
        if self.pace_fps is None or self.pace_fps == self.fps:
            return None, None
        pace = f"{self.pace_fps.numerator}/{self.pace_fps.denominator}"
        if self.codec in ("libx264", "libx264rgb"):
            ticks = 2 * self.fps  # H.264 counts field ticks: two per frame
            return f"force-cfr=1:fps={pace}", f"h264_metadata=tick_rate={ticks.numerator}/{ticks.denominator}"
        if self.codec == "libx265":
            return f"fps={pace}", f"hevc_metadata=tick_rate={self.fps.numerator}/{self.fps.denominator}"
        return None, None

    def color_args(self) -> list[str]:
        if is_rgb_pix_fmt(self.pix_fmt):
            return []
        args: list[str] = ["-color_range", self.conversion.range_name]
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
        if self.tag:
            args += ["-tag:v", self.tag]
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
    # ffmpeg reports a full disk only in words: the one place they are read, turned into an errno here.
    if looks_like_disk_full(stderr_tail):
        return OutputError(path.parent, "disk full: no space left on device", errno=errno.ENOSPC)
    detail = stderr_tail.strip() or "no message"
    return TransientError(f"ffmpeg failed {what} {path} (exit code {code}): {detail}")


class FrameWriter:
    """One encoder process writing ``path`` from frames given to ``write``."""

    def __init__(self, path: Path, spec: EncodeSpec, *, ffmpeg: FFmpeg, threads: int | None = None,
                 nice: int = 0) -> None:
        self.path = Path(path)
        self.spec = spec
        self.frames = 0
        self._expected_bytes = spec.width * spec.height * 3 * spec.dtype.itemsize
        self._proc = FFmpegProcess(spec.command(ffmpeg, self.path, threads=threads), stdin=True, name="encode",
                                   children=ffmpeg.children, title="the encoder", nice=nice)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.spec.frame_shape or frame.dtype != self.spec.dtype:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not match the encoder's "
                f"{self.spec.frame_shape} {self.spec.dtype}"
            )
        data = np.ascontiguousarray(frame).data.cast("B")
        try:
            self._proc.write(data)
        except (BrokenPipeError, OSError, ValueError):
            code = self._proc.wait()
            raise self._failure(code) from None
        self.frames += 1

    def _failure(self, code: int) -> Exception:
        return self._proc.failure() or encoder_failure(self.path, code, self._proc.stderr_tail())

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
            raise self._failure(code)

    def abort(self) -> None:
        self._proc.kill()
