"""Deciding, before any frame is made, what the output will be, and checking ffmpeg can write it.

The plan is the one place that fixes the output: the timeline; the encoder (``codec: auto``
follows the source, see ``midframe.engine.formats``), its pixel format (the source's bit depth
kept), the YUV <-> RGB conversion (the source's matrix and range, ``midframe.engine.colour``),
colour tags and HDR10 metadata; the container (``output.container`` null: the destination's
extension, which is the source's, or ``mkv`` where that cannot hold everything); how the rotation
is kept; what happens to each audio and subtitle stream. It is recorded in the work folder's
manifest, so a resumed job finishes exactly as it started. A pair of settings that cannot work is
a ``ConfigError`` naming the setting, raised before any frame is made; settings that work, but not
for this file (an encoder refusing its size), an ``Unencodable`` error about the file alone. The trials run
in the work folder (``midframe.engine.preflight``), every non-video stream in one pass.

VFR sources with ``--factor N``: the output is constant-rate at N times the source's nominal rate
(the grid rate of a constant-rate source with dropped frames, else the average rate), each output
frame at its exact time on the source timeline (``fps_timeline``), so the duration is the same and
audio stays in sync; output frame N*k is then the source frame shown at that time, not
necessarily source frame k.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.engine import formats
from midframe.engine.colour import is_rgb_pix_fmt, svtav1_params, x265_params
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.preflight import Preflight, Trial
from midframe.engine.reader import decode_pix_fmt
from midframe.engine.settings import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.slowmo import slow_streams
from midframe.engine.timeline import Timeline, factor_timeline, fps_timeline, slow_motion
from midframe.engine.videoinfo import StreamInfo, VideoInfo
from midframe.engine.writer import EncodeSpec, segment_format
from midframe.errors import ConfigError, MidframeError, Unencodable

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
    if conversion.rgb_source:
        return (f"{conversion.describe()} for the output (an RGB source: the usual matrix for "
                f"{info.width}x{info.height}, tagged)")
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
        color_space=None if rgb else conversion.tag_space or info.color_space,  # never gbr for YUV
        color_transfer=None if rgb else info.color_transfer,
        color_primaries=None if rgb else info.color_primaries,
        encoder_params=_hdr_params(info, encoder),
        tag=formats.video_tag(formats.codec_of_encoder(encoder), container),
        muxer=segment_format(container)[0],
        pace_fps=info.fps,
    )


# --- trying it out --------------------------------------------------------------------------------


def _candidates(stream: StreamInfo, container: str) -> list[Trial]:
    """What to try for one stream, in order: copy where the table agrees; else the container's fit
    (audio is never dropped for want of trying: the table's encoder, then AAC)."""
    spec = formats.container_of(container)
    if stream.kind == "audio":
        tries = [Trial("copy")] if formats.audio_plan(stream.codec, container) == "copy" else []
        for fit in dict.fromkeys([spec.audio_encoder if spec else "aac", "aac"]):
            encoder = formats.audio_encoder_for(fit, stream.channels)
            tries.append(Trial(encoder, formats.audio_bitrate(encoder, stream.channels or 2)))
        return tries
    tries = [Trial("copy")] if formats.subtitle_plan(stream.codec, container) == "copy" else []
    target = spec.text_subtitle if spec is not None and stream.codec in formats.TEXT_SUBTITLES else None
    return tries + [Trial(target)] if target else tries


def _try_streams(source: Path, candidates: dict[int, list[Trial]], check: Preflight) -> dict[int, Trial]:
    """The first trial of each stream that muxes, found in rounds: every stream's next candidate at once."""
    chosen: dict[int, Trial] = {}
    pending = {index: list(tries) for index, tries in candidates.items() if tries}
    while pending:
        trials = {index: tries.pop(0) for index, tries in pending.items()}
        passed = check.mux_streams(source, trials)
        chosen.update({index: trials[index] for index in passed})
        pending = {index: tries for index, tries in pending.items() if index not in passed and tries}
    return chosen


def _plan_streams(info: VideoInfo, container: str, check: Preflight) -> tuple[StreamPlan, ...]:
    streams = (*info.audio, *info.subtitles)
    chosen = _try_streams(info.path, {stream.index: _candidates(stream, container) for stream in streams}, check)
    plans: list[StreamPlan] = []
    for stream in streams:
        trial = chosen.get(stream.index, Trial("drop"))
        plan = StreamPlan(index=stream.index, kind=stream.kind, codec=stream.codec, action=trial.action,
                          bitrate=trial.bitrate)
        if plan.action == "drop":
            logger.warning("{}: a .{} file cannot hold its {} stream #{} ({}); leaving it out",
                           info.path.name, container, stream.kind, stream.index, stream.codec)
        elif plan.action != "copy":
            logger.info("{}: {} stream #{} ({}) re-encoded as {} for .{}", info.path.name, stream.kind,
                        stream.index, stream.codec, plan.action, container)
        plans.append(plan)
    return tuple(plans)


def _slow_motion_streams(info: VideoInfo, streams: tuple[StreamPlan, ...], container: str, check: Preflight, *,
                         factor: int, audio: str) -> tuple[StreamPlan, ...]:
    channels = {stream.index: stream.channels for stream in info.audio}
    spec = formats.container_of(container)
    fits: dict[int, Trial] = {}
    if audio == "stretch":  # copied audio is re-encoded to be slowed down: the container's own fit, tried at once
        for stream in streams:
            if stream.kind == "audio" and stream.action == "copy":
                fit = spec.audio_encoder if spec else "aac"
                encoder = formats.audio_encoder_for(fit, channels.get(stream.index, 0))
                fits[stream.index] = Trial(encoder, formats.audio_bitrate(encoder, channels.get(stream.index) or 2))
    passed = check.mux_streams(info.path, fits) if fits else set()

    def encoder_for(stream: StreamPlan) -> str | None:
        return fits[stream.index].action if stream.index in passed else None

    # atempo stretches from the stream's first sample; anchored at the video's start (time 0 in the join)
    # instead, audio that starts before or after the video keeps its place relative to it, slowed down too.
    anchor = f",asetpts=PTS+{factor - 1}*STARTPTS" if factor > 1 else ""
    slowed = tuple(
        replace(stream, filter=stream.filter + anchor,
                bitrate=stream.bitrate or formats.audio_bitrate(stream.action, channels.get(stream.index) or 2))
        if stream.filter else stream
        for stream in slow_streams(streams, factor=factor, audio=audio, encoder_for=encoder_for)
    )
    stretched = sum(1 for stream in slowed if stream.filter)
    logger.info("{}: slow motion x{}: {}; subtitles and chapters left out", info.path.name, factor,
                f"{stretched} audio stream(s) slowed down, pitch kept" if stretched else "no audio")
    return slowed


def _encode_refusal(info: VideoInfo, spec: EncodeSpec, output: OutputConfig, error: str,
                    check: Preflight) -> MidframeError:
    """Why ``spec`` cannot be encoded: the settings (``ConfigError``) when they fail on a neutral sample
    too, else this file (``Unencodable``, a ``MediaError``: its size, rate or colour is what the encoder refuses)."""
    if check.encode_neutral(spec, pix_fmt=output.pix_fmt) is not None:
        return ConfigError(
            f"output.codec (--codec) {spec.codec!r} with output.pix_fmt (--pix-fmt) {spec.pix_fmt!r} cannot encode "
            f"{spec.width}x{spec.height} video: {error}", key="output.codec"
        )
    return Unencodable(info.path, f"cannot be encoded by output.codec {spec.codec} at output.pix_fmt {spec.pix_fmt} "
                                  f"as {spec.width}x{spec.height} video at {float(spec.fps):.6g} fps ({error}), "
                                  "although these settings work for other videos", key="output.codec")


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
    check = Preflight(work_dir, container, ffmpeg)
    # The other streams' trial muxes read the source and owe nothing to the video's trials: both at once.
    trying_streams = ThreadPoolExecutor(max_workers=1, thread_name_prefix="midframe-preflight")
    tried_streams = trying_streams.submit(_plan_streams, info, container, check)
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
            raise _encode_refusal(info, spec, output, error, check)
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
                raise _encode_refusal(info, spec, output, error, check)
        streams = tried_streams.result()
        if engine.mode == "slowmo":
            streams = _slow_motion_streams(info, streams, container, check, factor=engine.factor,
                                           audio=output.slowmo_audio)
    finally:
        trying_streams.shutdown(wait=True)  # a video trial that failed: the stream trials end before the cleanup
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
