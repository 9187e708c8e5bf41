"""Deciding, before any frame is made, what the output will be, and checking ffmpeg can write it.

The plan is the one place that fixes the output: the timeline; the encoder (``codec: auto``
follows the source, see ``midframe.engine.formats``), its pixel format (the source's bit depth
kept), the YUV <-> RGB conversion (the source's matrix and range, ``midframe.engine.colour``),
colour tags and HDR10 metadata; the container (``output.container`` null: the destination's
extension, which is the source's, or ``mkv`` where that cannot hold everything); how the rotation
is kept; what happens to each audio and subtitle stream. It is recorded in the work folder's
manifest, so a resumed job finishes exactly as it started. A pair of settings that cannot work is
a ``ConfigError`` naming the setting, raised before any frame is made.

VFR sources with ``--factor N``: the output is constant-rate at N times the source's nominal rate
(the grid rate of a constant-rate source with dropped frames, else the average rate), each output
frame at its exact time on the source timeline (``fps_timeline``), so the duration is the same and
audio stays in sync; output frame N*k is then the source frame shown at that time, not
necessarily source frame k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine import formats
from midframe.engine.colour import is_rgb_pix_fmt, svtav1_params, x265_params
from midframe.engine.ffmpeg import QUIET, FFmpeg
from midframe.engine.probe import probe
from midframe.engine.probe_tools import first_error_line
from midframe.engine.reader import decode_pix_fmt
from midframe.engine.slowmo import slow_streams
from midframe.engine.timeline import Timeline, factor_timeline, fps_timeline, slow_motion
from midframe.engine.videoinfo import StreamInfo, VideoInfo
from midframe.engine.writer import EncodeSpec, segment_format
from midframe.errors import ConfigError, MediaError

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
    bitrate: str | None = None  # for a re-encode


@dataclass(frozen=True)
class OutputPlan:
    encode: EncodeSpec  # its muxer writes the segments
    container: str  # the output file's extension, without the dot
    segment_ext: str
    keep_rotation: bool  # decode frames as stored and write the rotation as metadata
    rotation: int  # degrees written to the output's display matrix (0: none)
    segment_frames: int
    streams: tuple[StreamPlan, ...]
    bitstream_filter: str | None = None  # applied to the video when the segments are joined
    chapters: bool = True  # the source's chapters (not in slow motion: they are timed for its speed)

    def output_path(self, destination: Path) -> Path:
        """Where the output goes: ``destination``, with this plan's container as its extension."""
        if destination.suffix.lower() == f".{self.container}":
            return destination
        return destination.with_suffix(f".{self.container}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["encode"] = self.encode.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputPlan:
        return cls(
            encode=EncodeSpec.from_json(data["encode"]),
            container=data["container"],
            segment_ext=data["segment_ext"],
            keep_rotation=bool(data["keep_rotation"]),
            rotation=int(data["rotation"]),
            segment_frames=int(data["segment_frames"]),
            streams=tuple(StreamPlan(**item) for item in data["streams"]),
            chapters=bool(data.get("chapters", True)),
            bitstream_filter=data.get("bitstream_filter"),
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
        rate = engine.factor * info.fps
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


# --- choosing -------------------------------------------------------------------------------------


def _choose_encoder(info: VideoInfo, output: OutputConfig, requested: str) -> str:
    """The encoder; ``ConfigError`` for an explicit codec/container pair that cannot work."""
    explicit = output.container is not None
    if output.codec == formats.AUTO:
        if explicit:
            return formats.encoder_for_container(info.codec, bit_depth=info.bit_depth, container=requested)
        return formats.follow_source(info.codec, bit_depth=info.bit_depth)
    problem = formats.settings_problem(output.codec, requested) if explicit else None
    if problem:
        raise ConfigError(problem, key="output.codec")
    return output.codec


def _choose_container(info: VideoInfo, output: OutputConfig, requested: str, encoder: str) -> str:
    if output.container is not None:
        return requested
    choice = formats.choose_container(requested, video_codec=formats.codec_of_encoder(encoder),
                                      subtitles=[stream.codec for stream in info.subtitles])
    if choice.reason:
        logger.info("{}: {}; writing a .{} file instead", info.path.name, choice.reason, choice.container)
    return choice.container


def _hdr_params(info: VideoInfo, encoder: str) -> tuple[str, ...]:
    if info.hdr is None:
        return ()
    if encoder == "libx265":
        return tuple(x265_params(info.hdr))
    if encoder == "libsvtav1":
        return tuple(svtav1_params(info.hdr))
    logger.warning("{}: {} cannot carry HDR10 mastering-display and light-level metadata; the output keeps "
                   "its transfer, primaries and matrix only (libx265 or libsvtav1 keep it all)", info.path.name, encoder)
    return ()


def describe_conversion(info: VideoInfo) -> str:
    """The YUV <-> RGB conversion in words, saying where an untagged source's matrix came from."""
    conversion = info.conversion
    if conversion.assumed:
        return (f"{conversion.describe()} (no colour matrix tag: the usual default for "
                f"{info.width}x{info.height})")
    return conversion.describe()


def _encode_spec(info: VideoInfo, output: OutputConfig, *, encoder: str, container: str, fps: Fraction,
                 keep_rotation: bool) -> EncodeSpec:
    width, height = (info.width, info.height) if keep_rotation else info.display_size
    pix_fmt = formats.pix_fmt_for(output.pix_fmt, encoder=encoder, bit_depth=info.bit_depth)
    rgb = is_rgb_pix_fmt(pix_fmt)
    conversion = info.conversion.for_output(pix_fmt)
    return EncodeSpec(
        width=width,
        height=height,
        fps=fps,
        input_pix_fmt=decode_pix_fmt(info),
        codec=encoder,
        crf=output.crf,
        preset=output.preset,
        pix_fmt=pix_fmt,
        matrix=conversion.matrix,
        full_range=conversion.full_range,
        chroma_upsample=conversion.upsample,
        color_range=None if rgb else info.color_range,
        color_space=None if rgb else info.color_space,
        color_transfer=None if rgb else info.color_transfer,
        color_primaries=None if rgb else info.color_primaries,
        encoder_params=_hdr_params(info, encoder),
        tag=formats.video_tag(formats.codec_of_encoder(encoder), container),
        muxer=segment_format(container)[0],
        pace_fps=info.fps,
    )


# --- trying it out --------------------------------------------------------------------------------


class _Preflight:
    """Tiny trial encodes and muxes in the work folder: errors show up in a second, not at the end."""

    def __init__(self, work_dir: Path, container: str, ffmpeg: FFmpeg) -> None:
        self.work_dir = work_dir
        self.ffmpeg = ffmpeg
        self.sample = work_dir / "preflight-video.tmp"
        self.final = work_dir / f"preflight-final.{container}"

    def encode(self, spec: EncodeSpec) -> str | None:
        """None when ffmpeg encodes two frames with ``spec``; else its error."""
        source = ["-f", "lavfi", "-i", f"color=c=gray:s={spec.width}x{spec.height}:r={spec.fps}", "-frames:v", "2"]
        done = self.ffmpeg.run(spec.command(self.ffmpeg, self.sample, source=source), timeout=120)
        return None if done.returncode == 0 else first_error_line(done.stderr)

    def mux_video(self, rotation: int, bitstream_filter: str | None) -> str | None:
        before, after = rotation_args(self.ffmpeg, rotation)
        bsf = ["-bsf:v", bitstream_filter] if bitstream_filter else []
        done = self.ffmpeg.run(
            [self.ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", *before, "-i", str(self.sample),
             "-map", "0:v:0", "-c", "copy", *bsf, *after, str(self.final)],
            timeout=120,
        )
        return None if done.returncode == 0 else first_error_line(done.stderr)

    def rotation_kept(self, rotation: int) -> bool:
        try:
            return probe(self.final, ffmpeg=self.ffmpeg).rotation == rotation
        except MediaError:
            return False

    def mux_stream(self, source: Path, index: int, codec_args: list[str]) -> bool:
        done = self.ffmpeg.run(
            [self.ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", "-i", str(source), "-map", f"0:{index}",
             *codec_args, "-t", "1", str(self.final)],
            timeout=120,
        )
        return done.returncode == 0

    def cleanup(self) -> None:
        for path in (self.sample, self.final):
            path.unlink(missing_ok=True)


def _plan_streams(info: VideoInfo, container: str, check: _Preflight) -> tuple[StreamPlan, ...]:
    plans: list[StreamPlan] = []
    for stream in (*info.audio, *info.subtitles):
        plan = _plan_stream(info.path, stream, container, check)
        if plan.action == "drop":
            logger.warning("{}: a .{} file cannot hold its {} stream #{} ({}); leaving it out",
                           info.path.name, container, stream.kind, stream.index, stream.codec)
        elif plan.action != "copy":
            logger.info("{}: {} stream #{} ({}) re-encoded as {} for .{}", info.path.name, stream.kind,
                        stream.index, stream.codec, plan.action, container)
        plans.append(plan)
    return tuple(plans)


def _plan_stream(source: Path, stream: StreamInfo, container: str, check: _Preflight) -> StreamPlan:
    """Copy where the table and a trial mux agree; else the container's fit (audio is never dropped
    for want of trying: the table's encoder, then AAC)."""
    def plan(action: str, bitrate: str | None = None) -> StreamPlan:
        return StreamPlan(index=stream.index, kind=stream.kind, codec=stream.codec, action=action, bitrate=bitrate)

    if stream.kind == "audio":
        if formats.audio_plan(stream.codec, container) == "copy" and check.mux_stream(source, stream.index, ["-c", "copy"]):
            return plan("copy")
        spec = formats.container_of(container)
        for fit in dict.fromkeys([spec.audio_encoder if spec else "aac", "aac"]):
            encoder = formats.audio_encoder_for(fit, stream.channels)
            bitrate = formats.audio_bitrate(encoder, stream.channels or 2)
            if check.mux_stream(source, stream.index, ["-c", encoder, "-b:a", bitrate]):
                return plan(encoder, bitrate)
        return plan("drop")
    if formats.subtitle_plan(stream.codec, container) == "copy" and check.mux_stream(source, stream.index, ["-c", "copy"]):
        return plan("copy")
    spec = formats.container_of(container)
    target = spec.text_subtitle if spec is not None and stream.codec in formats.TEXT_SUBTITLES else None
    if target and check.mux_stream(source, stream.index, ["-c", target]):
        return plan(target)
    return plan("drop")


def _slow_motion_streams(info: VideoInfo, streams: tuple[StreamPlan, ...], container: str, check: _Preflight, *,
                         factor: int, audio: str) -> tuple[StreamPlan, ...]:
    channels = {stream.index: stream.channels for stream in info.audio}

    def encoder_for(stream: StreamPlan) -> str | None:
        spec = formats.container_of(container)
        encoder = formats.audio_encoder_for(spec.audio_encoder if spec else "aac", channels.get(stream.index, 0))
        bitrate = formats.audio_bitrate(encoder, channels.get(stream.index) or 2)
        return encoder if check.mux_stream(info.path, stream.index, ["-c", encoder, "-b:a", bitrate]) else None

    slowed = tuple(
        replace(stream, bitrate=formats.audio_bitrate(stream.action, channels.get(stream.index) or 2))
        if stream.filter and stream.bitrate is None else stream
        for stream in slow_streams(streams, factor=factor, audio=audio, encoder_for=encoder_for)
    )
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
    """Decide the output and try it out (in ``work_dir``); ``ConfigError`` when it cannot work.

    ``destination``'s extension is the container asked for: fixed when ``output.container`` is set
    (the one-shot command sets it from ``-o``), else a wish that falls back to ``mkv``.
    """
    if not destination.suffix:
        raise ConfigError(f"{destination}: the output needs a file extension (.mp4, .mkv, ...) to choose its container",
                          key="output.name")
    requested = destination.suffix.lower().lstrip(".")
    encoder = _choose_encoder(info, output, requested)
    container = _choose_container(info, output, requested, encoder)
    bitstream_filter = formats.join_bitstream_filter(formats.codec_of_encoder(encoder), container)
    check = _Preflight(work_dir, container, ffmpeg)
    try:
        keep_rotation = True
        spec = _encode_spec(info, output, encoder=encoder, container=container, fps=timeline.fps_out,
                            keep_rotation=keep_rotation)
        error = check.encode(spec)
        if error and spec.pix_fmt != output.pix_fmt:
            logger.warning("{} cannot encode {}; using {} (8 bits)", encoder, spec.pix_fmt, output.pix_fmt)
            spec = replace(spec, pix_fmt=output.pix_fmt)
            error = check.encode(spec)
        if error:
            raise ConfigError(
                f"output.codec (--codec) {encoder!r} with output.pix_fmt (--pix-fmt) {spec.pix_fmt!r} cannot encode "
                f"{spec.width}x{spec.height} video: {error}", key="output.codec"
            )
        error = check.mux_video(0, bitstream_filter)
        if error:
            raise ConfigError(f"output.codec (--codec) {encoder}: a .{container} file (output.container or the "
                              f"output's extension) cannot hold its video: {error}", key="output.codec")
        if info.rotation and not (check.mux_video(info.rotation, bitstream_filter) is None
                                  and check.rotation_kept(info.rotation)):
            logger.info("{}: a .{} file cannot carry the rotation here; the frames are turned upright instead",
                        info.path.name, container)
            keep_rotation = False
            spec = replace(spec, width=info.display_size[0], height=info.display_size[1])
            error = check.encode(spec)
            if error:
                raise ConfigError(f"output.codec (--codec) {encoder} cannot encode {spec.width}x{spec.height}: {error}",
                                  key="output.codec")
        streams = _plan_streams(info, container, check)
        if engine.mode == "slowmo":
            streams = _slow_motion_streams(info, streams, container, check, factor=engine.factor,
                                           audio=output.slowmo_audio)
    finally:
        check.cleanup()
    return OutputPlan(
        encode=spec,
        container=container,
        segment_ext=segment_format(container)[1],
        keep_rotation=keep_rotation,
        rotation=info.rotation if keep_rotation else 0,
        segment_frames=_segment_frames(resume, timeline.fps_out),
        streams=streams,
        bitstream_filter=bitstream_filter,
        chapters=engine.mode != "slowmo",
    )
