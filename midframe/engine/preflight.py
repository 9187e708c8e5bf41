"""Trial encodes and muxes in the work folder, before any frame is made: errors show up in a second,
not at the end of a long job.

The non-video streams are tried together: one ffmpeg run muxes one second of every stream with the
action planned for it (``mux_streams``), whatever their number (a file with 500 audio streams took one
run per stream, minutes), into a file of its own, so the plan tries them while the video is tried. A run that fails is split in halves until the streams that fail on their
own are found, so k refusals among n streams cost about k * log2(n) runs more.

An encode that fails on the source's own figures (its size, rate, colour tags, HDR metadata) is tried
once more on a neutral sample with the same settings (``encode_neutral``): only when that fails too
are the settings at fault; otherwise it is this file that the encoder refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from midframe.engine.ffmpeg import QUIET, FFmpeg
from midframe.engine.probe import probe
from midframe.engine.probe_tools import first_error_line
from midframe.engine.writer import EncodeSpec
from midframe.errors import MediaError

NEUTRAL_SIZE = 64  # pixels square, at 25 fps: every encoder takes it
TRIAL_TIMEOUT_S = 120


@dataclass(frozen=True)
class Trial:
    """What the join would do with one stream: ``copy`` or an encoder (with its bitrate)."""

    action: str
    bitrate: str | None = None

    def args(self, number: int) -> list[str]:
        """Options for output stream ``number``."""
        args = [f"-c:{number}", self.action]
        return args + [f"-b:{number}", self.bitrate] if self.bitrate else args


def rotation_args(ffmpeg: FFmpeg, rotation: int) -> tuple[list[str], list[str]]:
    """(input options, output options) that give a stream-copied video stream this display rotation."""
    if not rotation:
        return [], []
    if ffmpeg.version >= (6, 0):
        return ["-display_rotation:v:0", str(rotation)], []
    return [], ["-metadata:s:v:0", f"rotate={rotation}"]


class Preflight:
    """Tiny trial encodes and muxes in ``work_dir`` for an output in ``container``."""

    def __init__(self, work_dir: Path, container: str, ffmpeg: FFmpeg) -> None:
        self.work_dir = work_dir
        self.ffmpeg = ffmpeg
        self.sample = work_dir / "preflight-video.tmp"
        self.final = work_dir / f"preflight-final.{container}"
        self.streams_final = work_dir / f"preflight-streams.{container}"  # its own: tried beside the video

    def encode(self, spec: EncodeSpec) -> str | None:
        """None when ffmpeg encodes two frames with ``spec``; else its error."""
        source = ["-f", "lavfi", "-i", f"color=c=gray:s={spec.width}x{spec.height}:r={spec.fps}", "-frames:v", "2"]
        done = self.ffmpeg.run(spec.command(self.ffmpeg, self.sample, source=source), timeout=TRIAL_TIMEOUT_S)
        return None if done.returncode == 0 else first_error_line(done.stderr)

    def encode_neutral(self, spec: EncodeSpec, *, pix_fmt: str) -> str | None:
        """``encode`` with ``spec``'s settings (encoder, quality, speed, ``pix_fmt``) on a sample that owes
        nothing to the source: no colour tags, HDR parameters or pacing, a size and rate every encoder takes."""
        neutral = replace(spec, width=NEUTRAL_SIZE, height=NEUTRAL_SIZE, fps=Fraction(25), pix_fmt=pix_fmt,
                          color_range=None, color_space=None, color_transfer=None, color_primaries=None,
                          encoder_params=(), pace_fps=None)
        return self.encode(neutral)

    def mux_video(self, rotation: int, bitstream_filter: str | None) -> str | None:
        before, after = rotation_args(self.ffmpeg, rotation)
        bsf = ["-bsf:v", bitstream_filter] if bitstream_filter else []
        done = self.ffmpeg.run(
            [self.ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", *before, "-i", str(self.sample),
             "-map", "0:v:0", "-c", "copy", *bsf, *after, str(self.final)],
            timeout=TRIAL_TIMEOUT_S,
        )
        return None if done.returncode == 0 else first_error_line(done.stderr)

    def rotation_kept(self, rotation: int) -> bool:
        try:
            return probe(self.final, ffmpeg=self.ffmpeg).rotation == rotation
        except MediaError:
            return False

    def mux_streams(self, source: Path, trials: Mapping[int, Trial]) -> set[int]:
        """The streams of ``source`` (index -> its trial) that go into the container as tried."""
        return set(trials) - set(self._refused(source, trials, list(trials)))

    def _refused(self, source: Path, trials: Mapping[int, Trial], indices: Sequence[int]) -> list[int]:
        if not indices or self._mux(source, [(index, trials[index]) for index in indices]):
            return []
        if len(indices) == 1:
            return list(indices)
        half = len(indices) // 2
        return self._refused(source, trials, indices[:half]) + self._refused(source, trials, indices[half:])

    def _mux(self, source: Path, streams: Sequence[tuple[int, Trial]]) -> bool:
        args: list[str] = []
        for number, (index, trial) in enumerate(streams):
            args += ["-map", f"0:{index}", *trial.args(number)]
        done = self.ffmpeg.run([self.ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", "-i", str(source), *args, "-t", "1",
                                str(self.streams_final)], timeout=TRIAL_TIMEOUT_S)
        return done.returncode == 0

    def cleanup(self) -> None:
        for path in (self.sample, self.final, self.streams_final):
            path.unlink(missing_ok=True)
