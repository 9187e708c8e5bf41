"""Deciding, before any frame is made, what the output will be, and checking ffmpeg can write it.

The plan fixes the timeline, the encoder settings (10-bit kept 10-bit, colour tags copied), how the
rotation is kept, and what happens to each audio and subtitle stream in the target container. It is
recorded in the work folder's manifest, so a resumed job finishes exactly as it started.

VFR sources with ``--factor N``: the output is constant-rate at N times the source's average rate,
each output frame at its exact time on the source timeline (``fps_timeline``), so there are exactly
N times the frames, the duration is the same and audio stays in sync; output frame N*k is then the
source frame shown at that time, not necessarily source frame k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.ffmpeg import QUIET, FFmpeg, run
from midframe.engine.probe import VideoInfo, first_error_line, probe
from midframe.engine.reader import decode_pix_fmt
from midframe.engine.slowmo import slow_streams
from midframe.engine.timeline import Timeline, factor_timeline, fps_timeline, slow_motion
from midframe.engine.writer import EncodeSpec, is_rgb_pix_fmt, segment_format
from midframe.errors import ConfigError, MediaError

# The default 8-bit output format is raised to 10 bits for sources above 8 bits.
PROMOTE_PIX_FMT = {"yuv420p": "yuv420p10le"}
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
MAX_RATE_NUMERATOR = 1_000_000


@dataclass(frozen=True)
class StreamPlan:
    """What the join does with one source stream: ``copy``, an encoder name, or ``drop``; an encoded
    stream may pass through an ffmpeg ``filter`` (slow motion's atempo)."""

    index: int
    kind: str
    codec: str
    action: str
    filter: str | None = None


@dataclass(frozen=True)
class OutputPlan:
    encode: EncodeSpec  # its muxer writes the segments
    segment_ext: str
    keep_rotation: bool  # decode frames as stored and write the rotation as metadata
    rotation: int  # degrees written to the output's display matrix (0: none)
    segment_frames: int
    streams: tuple[StreamPlan, ...]
    chapters: bool = True  # the source's chapters (not in slow motion: they are timed for its speed)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["encode"] = self.encode.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputPlan:
        return cls(
            encode=EncodeSpec.from_json(data["encode"]),
            segment_ext=data["segment_ext"],
            keep_rotation=bool(data["keep_rotation"]),
            rotation=int(data["rotation"]),
            segment_frames=int(data["segment_frames"]),
            streams=tuple(StreamPlan(**item) for item in data["streams"]),
            chapters=bool(data.get("chapters", True)),
        )


def build_timeline(info: VideoInfo, engine: EngineConfig) -> Timeline:
    """The output timeline: ``--fps`` exact in time; ``--factor`` exact in frames (see module doc);
    slow motion (``engine.mode: slowmo``) is the ``--factor`` timeline at the source's rate."""
    timeline = _smooth_timeline(info, engine)
    return slow_motion(timeline, factor=engine.factor) if engine.mode == "slowmo" else timeline


def _smooth_timeline(info: VideoInfo, engine: EngineConfig) -> Timeline:
    if engine.target_fps is not None:
        return fps_timeline(timestamps=info.timestamps, duration=info.duration, target_fps=engine.target_fps)
    if info.vfr:
        rate = engine.factor * info.avg_frame_rate
        if rate.numerator > MAX_RATE_NUMERATOR:
            rate = rate.limit_denominator(1001)
        return fps_timeline(timestamps=info.timestamps, duration=info.duration, target_fps=rate)
    return factor_timeline(frames_in=info.frame_count, factor=engine.factor, fps_in=info.fps)


def rotation_args(ffmpeg: FFmpeg, rotation: int) -> tuple[list[str], list[str]]:
    """(input options, output options) that give a stream-copied video stream this display rotation."""
    if not rotation:
        return [], []
    if ffmpeg.version >= (6, 0):
        return ["-display_rotation:v:0", str(rotation)], []
    return [], ["-metadata:s:v:0", f"rotate={rotation}"]


def _segment_frames(resume: ResumeConfig, fps_out: Fraction) -> int:
    if resume.segment_frames:
        return resume.segment_frames
    return max(1, round(resume.segment_seconds * fps_out))


def _encode_spec(info: VideoInfo, output: OutputConfig, fps: Fraction, muxer: str, keep_rotation: bool) -> EncodeSpec:
    width, height = (info.width, info.height) if keep_rotation else info.display_size
    pix_fmt = output.pix_fmt
    if info.high_bit_depth:
        pix_fmt = PROMOTE_PIX_FMT.get(pix_fmt, pix_fmt)
    rgb = is_rgb_pix_fmt(pix_fmt)
    return EncodeSpec(
        width=width,
        height=height,
        fps=fps,
        input_pix_fmt=decode_pix_fmt(info),
        codec=output.codec,
        crf=output.crf,
        preset=output.preset,
        pix_fmt=pix_fmt,
        color_range=None if rgb else info.color_range,
        color_space=None if rgb else info.color_space,
        color_transfer=None if rgb else info.color_transfer,
        color_primaries=None if rgb else info.color_primaries,
        muxer=muxer,
    )


class _Preflight:
    """Tiny trial encodes and muxes in the work folder: errors show up in a second, not at the end."""

    def __init__(self, work_dir: Path, destination: Path, ffmpeg: FFmpeg) -> None:
        self.work_dir = work_dir
        self.suffix = destination.suffix
        self.destination = destination
        self.ffmpeg = ffmpeg
        self.sample = work_dir / "preflight-video.tmp"
        self.final = work_dir / f"preflight-final{self.suffix}"

    def encode(self, spec: EncodeSpec) -> str | None:
        """None when ffmpeg encodes two frames with ``spec``; else its error."""
        source = ["-f", "lavfi", "-i", f"color=c=gray:s={spec.width}x{spec.height}:r={spec.fps}", "-frames:v", "2"]
        done = run(spec.command(self.ffmpeg, self.sample, source=source), timeout=120)
        return None if done.returncode == 0 else first_error_line(done.stderr)

    def mux_video(self, rotation: int) -> str | None:
        before, after = rotation_args(self.ffmpeg, rotation)
        done = run(
            [self.ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", *before, "-i", str(self.sample),
             "-map", "0:v:0", "-c", "copy", *after, str(self.final)],
            timeout=120,
        )
        return None if done.returncode == 0 else first_error_line(done.stderr)

    def rotation_kept(self, rotation: int) -> bool:
        try:
            return probe(self.final, ffmpeg=self.ffmpeg).rotation == rotation
        except MediaError:
            return False

    def mux_stream(self, source: Path, index: int, codec_args: list[str]) -> bool:
        done = run(
            [self.ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", "-i", str(source), "-map", f"0:{index}",
             *codec_args, "-t", "1", str(self.final)],
            timeout=120,
        )
        return done.returncode == 0

    def cleanup(self) -> None:
        for path in (self.sample, self.final):
            path.unlink(missing_ok=True)


def _audio_fallback(suffix: str) -> list[str]:
    if suffix in (".webm", ".ogg", ".opus"):
        return ["-c", "libopus", "-b:a", "160k"]
    return ["-c", "aac", "-b:a", "192k"]


def _subtitle_fallback(suffix: str) -> str | None:
    return {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".mkv": "srt", ".webm": "webvtt"}.get(suffix)


def _plan_streams(info: VideoInfo, check: _Preflight) -> tuple[StreamPlan, ...]:
    suffix = check.suffix.lower()
    plans: list[StreamPlan] = []
    for stream in (*info.audio, *info.subtitles):
        action = "copy" if check.mux_stream(info.path, stream.index, ["-c", "copy"]) else None
        if action is None and stream.kind == "audio":
            fallback = _audio_fallback(suffix)
            action = fallback[1] if check.mux_stream(info.path, stream.index, fallback) else None
        elif action is None and stream.codec in TEXT_SUBTITLES:
            target = _subtitle_fallback(suffix)
            if target and check.mux_stream(info.path, stream.index, ["-c", target]):
                action = target
        if action is None:
            logger.warning(
                "{}: a {} file cannot hold its {} stream #{} ({}); leaving it out",
                info.path.name, suffix or "(no extension)", stream.kind, stream.index, stream.codec,
            )
            action = "drop"
        elif action != "copy":
            logger.info("{}: {} stream #{} ({}) re-encoded as {} for {}", info.path.name, stream.kind,
                        stream.index, stream.codec, action, suffix)
        plans.append(StreamPlan(index=stream.index, kind=stream.kind, codec=stream.codec, action=action))
    return tuple(plans)


def _slow_motion_streams(info: VideoInfo, streams: tuple[StreamPlan, ...], check: _Preflight, *, factor: int,
                         audio: str) -> tuple[StreamPlan, ...]:
    def encoder_for(stream: StreamPlan) -> str | None:
        fallback = _audio_fallback(check.suffix.lower())
        return fallback[1] if check.mux_stream(info.path, stream.index, fallback) else None

    slowed = tuple(slow_streams(streams, factor=factor, audio=audio, encoder_for=encoder_for))
    stretched = sum(1 for stream in slowed if stream.filter)
    logger.info("{}: slow motion x{}: {}; subtitles and chapters left out", info.path.name, factor,
                f"{stretched} audio stream(s) slowed down, pitch kept" if stretched else "no audio")
    return slowed


def make_plan(
    info: VideoInfo,
    *,
    engine: EngineConfig,
    output: OutputConfig,
    resume: ResumeConfig,
    destination: Path,
    work_dir: Path,
    ffmpeg: FFmpeg,
    timeline: Timeline,
) -> OutputPlan:
    """Decide the output and try it out (in ``work_dir``); ``ConfigError`` when it cannot work."""
    if not destination.suffix:
        raise ConfigError(f"{destination}: the output needs a file extension (.mp4, .mkv, ...) to choose its container")
    muxer, ext = segment_format(destination.suffix)
    check = _Preflight(work_dir, destination, ffmpeg)
    try:
        keep_rotation = True
        spec = _encode_spec(info, output, timeline.fps_out, muxer, keep_rotation)
        error = check.encode(spec)
        if error and spec.pix_fmt != output.pix_fmt:
            logger.warning("{} cannot encode {}; using {} (8 bits)", output.codec, spec.pix_fmt, output.pix_fmt)
            spec = replace(spec, pix_fmt=output.pix_fmt)
            error = check.encode(spec)
        if error and "not currently supported in container" in error:
            raise ConfigError(f"{destination.name}: a {destination.suffix} file cannot hold {output.codec} video ({error})")
        if error:
            raise ConfigError(
                f"output: codec {output.codec!r} with pix_fmt {spec.pix_fmt!r} cannot encode "
                f"{spec.width}x{spec.height} video: {error}"
            )
        error = check.mux_video(0)
        if error:
            raise ConfigError(f"{destination.name}: a {destination.suffix} file cannot hold {output.codec} video ({error})")
        if info.rotation and not (check.mux_video(info.rotation) is None and check.rotation_kept(info.rotation)):
            logger.info("{}: a {} file cannot carry the rotation here; the frames are turned upright instead",
                        destination.name, destination.suffix)
            keep_rotation = False
            spec = replace(spec, width=info.display_size[0], height=info.display_size[1])
            error = check.encode(spec)
            if error:
                raise ConfigError(f"output: {output.codec} cannot encode {spec.width}x{spec.height}: {error}")
        streams = _plan_streams(info, check)
        if engine.mode == "slowmo":
            streams = _slow_motion_streams(info, streams, check, factor=engine.factor, audio=output.slowmo_audio)
    finally:
        check.cleanup()
    return OutputPlan(
        encode=spec,
        segment_ext=ext,
        keep_rotation=keep_rotation,
        rotation=info.rotation if keep_rotation else 0,
        segment_frames=_segment_frames(resume, timeline.fps_out),
        streams=streams,
        chapters=engine.mode != "slowmo",
    )
