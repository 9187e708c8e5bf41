"""One video in, one smoother video out, resumable: ``convert``.

Three threads and two bounded queues (``stages``, ``frameloop``)::

    decode thread ──(frame, thumbnail)──▶ model loop (caller's thread) ──frame──▶ encode thread
    FrameReader                           timeline, scenes, batches,              SegmentSink
                                          interpolator, checkpoints, progress     (segments + manifest)

The decode thread reads ahead and makes the scene thumbnails; the encode thread writes behind and
rolls segments over; the model loop does nothing else, so the model is never kept waiting while
ffmpeg works. The work folder (``workdir``) holds the plan and the finished segments; the joined
result is checked against the plan (``verify``) before it is moved into place.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
from loguru import logger

from midframe.engine import scenes
from midframe.engine.conversion import JobControl, PipelineReport, Progress, ProgressCallback
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.frameloop import Counts, FrameLoop, first_source
from midframe.engine.interpolators.auto import AutoInterpolator
from midframe.engine.interpolators.base import Interpolator
from midframe.engine.interpolators.chooser import SceneChoice, stride_for
from midframe.engine.manifest import Manifest
from midframe.engine.plan import OutputPlan, describe_conversion
from midframe.engine.probe import probe
from midframe.engine.reader import FrameReader
from midframe.engine.segments import SegmentSink, join
from midframe.engine.settings import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.sniff import frame_size_refusal
from midframe.engine.stages import Decoder, Encoder, FrameSink, queue_frames
from midframe.engine.threads import ThreadPlan, plan_threads, usable_cores
from midframe.engine.timeline import Timeline
from midframe.engine.verify import verify_output
from midframe.engine.videoinfo import VideoInfo
from midframe.engine.workdir import Prepared, Renderer, move_into_place, prepare
from midframe.errors import MediaError, OutputError, VerificationError, WeightsError
from midframe.fs.identity import Fingerprint

MakeInterpolator = Callable[[EngineConfig], Interpolator]
AUTO_BATCH = 4  # engine.batch_size auto, for an engine that does not say what suits it


def batch_size_for(engine: EngineConfig, interpolator: Interpolator) -> int:
    """Pairs per interpolate() call: the setting, or with ``auto`` what the (loaded) engine chose."""
    chosen = interpolator.batch_size
    if chosen is not None and chosen > 0:
        return chosen
    return engine.batch_size if isinstance(engine.batch_size, int) else AUTO_BATCH


def thread_plan_for(interpolator: Interpolator) -> ThreadPlan:
    return plan_threads(cores=usable_cores(), model_threads=interpolator.threads,
                        model_uses_opencv=interpolator.uses_opencv)


def _render(
    job: Prepared,
    info: VideoInfo,
    *,
    work_dir: Path,
    interpolator: Interpolator,
    ffmpeg: FFmpeg,
    control: JobControl,
    on_progress: ProgressCallback | None,
) -> tuple[Counts, dict[str, Any]]:
    start = job.manifest.frames_done
    threads = thread_plan_for(interpolator)
    reader = frame_reader(info, job.plan, ffmpeg=ffmpeg, start=first_source(job.timeline, start, job.engine),
                          threads=threads.decode)
    sink = SegmentSink(work_dir=work_dir, manifest=job.manifest, plan=job.plan, timeline=job.timeline,
                       start=start, ffmpeg=ffmpeg, threads=threads.encode, nice=threads.encode_nice)
    return run_frames(timeline=job.timeline, start=start, engine=job.engine, interpolator=interpolator,
                      reader=reader, sink=sink, control=control, on_progress=on_progress)


def frame_reader(info: VideoInfo, plan: OutputPlan, *, ffmpeg: FFmpeg, start: int, threads: int | None) -> FrameReader:
    """The decoder of a planned job's source from frame ``start``: the one place that says how a job's
    frames are read (the plan's rotation and YUV -> RGB conversion), for the whole file and for one farm
    segment alike."""
    return FrameReader(info, ffmpeg=ffmpeg, start=start, keep_rotation=plan.keep_rotation,
                       conversion=plan.encode.conversion, threads=threads)


def run_frames(
    *,
    timeline: Timeline,
    start: int,
    engine: EngineConfig,
    interpolator: Interpolator,
    reader: FrameReader,
    sink: FrameSink,
    control: JobControl,
    on_progress: ProgressCallback | None = None,
) -> tuple[Counts, dict[str, Any]]:
    """The three threads over output frames ``start .. timeline.frames_out - 1``: ``reader`` must
    start at ``frameloop.first_source(timeline, start, engine)`` (with the plan's conversion): the
    scene and dedup decisions look back that far; ``sink`` takes every output frame in order.

    The whole file (``convert``) and one farm segment (``midframe.engine.ranges``) both run here. The
    caller gives ``reader`` and ``sink`` their thread counts (``thread_plan_for(interpolator)``)."""
    threads = thread_plan_for(interpolator)
    batch_size = batch_size_for(engine, interpolator)
    size = queue_frames(reader.frame_bytes, batch_size)
    decoder = Decoder(reader, size, interrupted=control.raise_if_aborted)
    encoder = Encoder(sink, size, interrupted=control.raise_if_aborted)
    loop = FrameLoop(timeline=timeline, start=start, engine=engine, batch_size=batch_size,
                     interpolator=interpolator, decoder=decoder, encoder=encoder, control=control,
                     on_progress=on_progress)
    opencv_threads = cv2.getNumThreads()
    if threads.opencv is not None:
        cv2.setNumThreads(threads.opencv)  # process-wide; given back below
    interpolator.on_preparing = loop.preparing  # called by an engine with one-time work per frame size
    decoder.start()
    encoder.start()
    try:
        loop.run()
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, the open segment is lost
        decoder.stop()
        encoder.kill()
        raise
    except BaseException:
        decoder.stop()
        if encoder.error is None:
            try:
                encoder.finish(timeout=600)  # keep what was made: the open segment is closed cleanly
            except BaseException as exc:
                logger.warning("could not close the last segment cleanly: {}", exc)
                encoder.kill()
        raise
    finally:
        cv2.setNumThreads(opencv_threads)
        interpolator.on_preparing = None
    decoder.stop()
    finishing = time.perf_counter()
    encoder.finish()
    finish_s = time.perf_counter() - finishing  # the encoder's work left when the model is done
    waits: dict[str, Any] = {
        "decode_wait_s": round(decoder.wait_s, 3), "encode_wait_s": round(encoder.wait_s, 3),
        "batch_size": batch_size,
        "threads": {"decode": threads.decode, "encode": threads.encode, "opencv": threads.opencv,
                    "encode_nice": threads.encode_nice},
        "encode_finish_s": round(finish_s, 3),
    }
    if interpolator.backend:
        waits["backend"] = interpolator.backend
    return loop.counts, waits


def use_recorded_scenes(interpolator: Interpolator, manifest: Manifest) -> list[SceneChoice]:
    """Give an ``auto`` engine the per-scene choices recorded in ``manifest`` (a resumed job, a farm
    segment); the choices, or [] when none are recorded or the engine is not ``auto``."""
    if manifest.engine_scenes is None:
        return []
    choices = [SceneChoice.from_json(item) for item in manifest.engine_scenes]
    if isinstance(interpolator, AutoInterpolator):
        interpolator.use(choices)
    elif any(choice.engine != interpolator.name for choice in choices):
        # auto without RIFE's weights is dis alone: it must not make the scenes chosen for RIFE.
        wanted = sorted({choice.engine for choice in choices})
        raise WeightsError(f"this job's scenes were chosen for the {', '.join(wanted)} engine(s); only "
                           f"{interpolator.name} can run here (`midframe models fetch` installs RIFE's weights)")
    return choices


def choose_scenes(job: Prepared, info: VideoInfo, interpolator: Interpolator, *, work_dir: Path, ffmpeg: FFmpeg,
                  control: JobControl) -> list[SceneChoice]:
    """With engine ``auto`` (loaded): the engine of each scene, chosen once per job by rebuilding a few of
    the source's own frames with every candidate (``chooser``) and recorded in the manifest; a job that
    has them recorded uses those. [] for any other engine."""
    if not isinstance(interpolator, AutoInterpolator):
        return []
    recorded = use_recorded_scenes(interpolator, job.manifest)
    if job.manifest.engine_scenes is not None:
        return recorded
    started = time.monotonic()
    model_frames = sum(1 for out in job.timeline.frames() if out.t != 0.0)
    stride = stride_for(frames_in=info.frame_count, model_frames=model_frames)
    engine = job.engine

    def classify(a: Any, b: Any) -> str:
        return scenes.classify(a, b, scene_threshold=engine.scene_threshold, static_threshold=engine.static_threshold,
                               scene_detect=engine.scene_detect).kind

    with frame_reader(info, job.plan, ffmpeg=ffmpeg, start=0, threads=None) as reader:
        frames = ((index, frame, scenes.thumbnail(frame)) for index, frame in reader)
        choices = interpolator.choose(frames, classify=classify, stride=stride, checkpoint=control.checkpoint)
    job.manifest.engine_scenes = [choice.to_json() for choice in choices]
    job.manifest.save(work_dir)
    made = {name: sum(1 for choice in choices if choice.engine == name) for name in interpolator.engines}
    logger.info("{}: engine auto chose per scene ({} samples, {:.1f} s): {}", info.path.name,
                sum(choice.samples for choice in choices), time.monotonic() - started,
                ", ".join(f"{name} {count} scene(s)" for name, count in made.items()))
    return choices


def _record_engine(job: Prepared, name: str, *, work_dir: Path, resuming: bool) -> None:
    """The manifest names the engine that really runs, so a resumed job never mixes two engines."""
    if name == job.engine.name:
        return
    if resuming:
        raise WeightsError(
            f"the first {job.manifest.frames_done} frames of this job were made with the {job.engine.name} "
            f"engine, which cannot run now; make it available again to finish the job with it"
        )
    job.engine = job.engine.model_copy(update={"name": name})
    job.manifest.engine = job.engine.model_dump(mode="json")
    job.manifest.save(work_dir)


def convert(
    source: Path,
    destination: Path,
    *,
    work_dir: Path,
    engine: EngineConfig,
    output: OutputConfig,
    resume: ResumeConfig,
    make_interpolator: MakeInterpolator,
    ffmpeg: FFmpeg,
    control: JobControl | None = None,
    on_progress: ProgressCallback | None = None,
    renderer: Renderer | None = None,
    fingerprint: Fingerprint | None = None,
) -> PipelineReport:
    """Convert ``source`` into ``destination`` (which must not exist); see the module doc.

    ``fingerprint``: the source's, as the caller (the daemon) took it; without one it is taken here.

    The output's container is ``destination``'s extension. With ``output.container`` null that is a
    wish: where it cannot hold the output (a .webm for H.264, bitmap subtitles in .mp4) the plan
    takes ``mkv`` and the file is ``destination`` with that extension; ``report.output`` says where
    it is. Before it is moved into place it is checked against the plan (``verify``): a mismatch is
    a ``VerificationError`` and nothing appears.
    """
    started = time.monotonic()
    source, destination, work_dir = Path(source), Path(destination), Path(work_dir)
    control = control or JobControl()
    ffmpeg = ffmpeg.watched_by(control.children)  # every child of this job: its deadline, and the stop
    info = probe(source, ffmpeg=ffmpeg)
    too_big = frame_size_refusal(width=info.width, height=info.height, max_pixels=engine.max_frame_pixels)
    if too_big is not None:
        raise MediaError(source, too_big)
    fingerprint = fingerprint or Fingerprint.of(source)
    if destination.exists():
        raise OutputError(destination, "already exists; not overwriting it")
    job = prepare(info, fingerprint=fingerprint, destination=destination, work_dir=work_dir, engine=engine,
                   output=output, resume=resume, ffmpeg=ffmpeg, renderer=renderer)
    final = job.plan.output_path(destination)
    if final != destination and final.exists():
        raise OutputError(final, "already exists; not overwriting it")
    start = job.manifest.frames_done
    counts = Counts()
    extra: dict[str, Any] = {}
    engine_name: str = job.engine.name
    device = job.engine.device
    if renderer is not None:
        start = sum(segment.frames for segment in job.manifest.segments)
        if job.engine.name == "auto" and job.manifest.engine_scenes is None:
            # Chosen here, once: every farm worker then makes its segments with the recorded choices.
            chooser = make_interpolator(job.engine)
            try:
                _record_engine(job, chooser.name, work_dir=work_dir, resuming=start > 0)
                chooser.load()
                choose_scenes(job, info, chooser, work_dir=work_dir, ffmpeg=ffmpeg, control=control)
            finally:
                chooser.close()
        counts, extra = renderer.render(job, info, work_dir=work_dir, control=control, on_progress=on_progress)
        device = "farm"
    elif start < job.timeline.frames_out:
        control.checkpoint()
        interpolator = make_interpolator(job.engine)
        try:
            _record_engine(job, interpolator.name, work_dir=work_dir, resuming=start > 0)
            interpolator.load()
            engine_name, device = interpolator.name, interpolator.device
            choose_scenes(job, info, interpolator, work_dir=work_dir, ffmpeg=ffmpeg, control=control)
            counts, extra = _render(job, info, work_dir=work_dir, interpolator=interpolator, ffmpeg=ffmpeg,
                                    control=control, on_progress=on_progress)
        finally:
            interpolator.close()
    elif on_progress is not None:
        total = job.timeline.frames_out
        on_progress(Progress(total, total, 0.0, time.monotonic() - started, 0.0))
    control.checkpoint()
    joining = time.monotonic()
    joined = join(work_dir=work_dir, segments=job.manifest.segments, info=info, plan=job.plan,
                  fps=job.timeline.fps_out, ffmpeg=ffmpeg)
    # The join read the source's other streams: a source that grew or changed meanwhile (a recording
    # still being written) is told now, as a changed source, before it is judged against the probe's figures.
    control.checkpoint()
    verifying = time.monotonic()
    try:
        verify_output(joined, info=info, plan=job.plan, timeline=job.timeline, ffmpeg=ffmpeg)
    except VerificationError as exc:
        joined.unlink(missing_ok=True)
        if not exc.video_ok:  # the segments themselves are wrong: the next attempt makes them again
            shutil.rmtree(work_dir, ignore_errors=True)
        raise VerificationError(f"{source}: {exc}", video_ok=exc.video_ok) from None
    move_into_place(joined, final)
    shutil.rmtree(work_dir, ignore_errors=True)
    wall = time.monotonic() - started
    return PipelineReport(
        source=source,
        output=final,
        engine=engine_name,
        engine_requested=engine.name,
        device=device,
        frames_in=info.frame_count,
        frames_out=job.timeline.frames_out,
        fps_in=str(info.fps),
        fps_out=str(job.timeline.fps_out),
        wall_s=round(wall, 3),
        model_s=round(counts.model_s, 3),
        frames_interpolated=counts.interpolated,
        frames_static=counts.static,
        frames_cut=counts.cut,
        dedup_repeats=counts.dedup_repeats,
        resumed_from_frame=start,
        scenes=list(job.manifest.engine_scenes or []),
        extra={
            **extra,
            "join_s": round(verifying - joining, 3),
            "verify_s": round(time.monotonic() - verifying, 3),
            "segments": len(job.manifest.segments),
            "pix_fmt": job.plan.encode.pix_fmt,
            "codec": job.plan.encode.codec,
            "container": job.plan.container,
            "colour": describe_conversion(info),
            "quality": job.engine.quality if job.engine.quality == "standard" else f"high (tta {job.engine.tta})",
        },
    )
