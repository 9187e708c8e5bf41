"""The frame loop: one video in, one smoother video out, resumable.

Three threads and two bounded queues::

    decode thread ──(frame, thumbnail)──▶ model loop (caller's thread) ──frame──▶ encode thread
    FrameReader                           timeline, scenes, batches,              SegmentSink
                                          interpolator, checkpoints, progress     (segments + manifest)

The decode thread reads ahead and makes the scene thumbnails; the encode thread writes behind and
rolls segments over; the model loop does nothing else, so the model is never kept waiting while
ffmpeg works. Frames are passed by reference: the reader gives each frame its own array and no
stage modifies one, so frames at t=0 reach the encoder as the very array the decoder made.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from loguru import logger

from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine import scenes
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.interpolators.base import FramePair, Interpolator
from midframe.engine.job import JobControl, PipelineReport, Progress, ProgressCallback
from midframe.engine.manifest import (
    MANIFEST_NAME,
    Fingerprint,
    Manifest,
    Segment,
    is_work_folder,
    load_manifest,
    verified_segments,
)
from midframe.engine.plan import OutputPlan, build_timeline, make_plan
from midframe.engine.probe import VideoInfo, probe
from midframe.engine.reader import FrameReader
from midframe.engine.segments import SegmentSink, join
from midframe.engine.threads import ThreadPlan, plan_threads, usable_cores
from midframe.engine.timeline import Timeline
from midframe.errors import EngineError, MidframeError, OutputError, WeightsError

MakeInterpolator = Callable[[EngineConfig], Interpolator]

QUEUE_BYTES = 384 << 20  # frames held in each queue, at most
PROGRESS_INTERVAL_S = 0.25
_END = object()


AUTO_BATCH = 4  # engine.batch_size auto, for an engine that does not say what suits it


def _queue_frames(frame_bytes: int, batch_size: int) -> int:
    return max(4, min(2 * batch_size + 32, QUEUE_BYTES // max(frame_bytes, 1)))


def batch_size_for(engine: EngineConfig, interpolator: Interpolator) -> int:
    """Pairs per interpolate() call: the setting, or with ``auto`` what the (loaded) engine chose."""
    chosen = getattr(interpolator, "batch_size", None)
    if isinstance(chosen, int) and chosen > 0:
        return chosen
    return engine.batch_size if isinstance(engine.batch_size, int) else AUTO_BATCH


def thread_plan_for(interpolator: Interpolator) -> ThreadPlan:
    return plan_threads(cores=usable_cores(), model_threads=int(getattr(interpolator, "threads", 0) or 0),
                        model_uses_opencv=bool(getattr(interpolator, "uses_opencv", False)))


# --- the threads -------------------------------------------------------------------------------


class _Decoder(threading.Thread):
    """Reads frames ahead and makes their thumbnails; hands out ``(index, frame, thumbnail)``."""

    def __init__(self, reader: FrameReader, size: int) -> None:
        super().__init__(name="midframe-decode", daemon=True)
        self.reader = reader
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._halt = threading.Event()
        self.wait_s = 0.0

    def run(self) -> None:
        try:
            for index, frame in self.reader:
                if not self._put((index, frame, scenes.thumbnail(frame))):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the model loop, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._halt.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        started = time.perf_counter()
        while True:
            try:
                item = self.queue.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.is_alive():
                    item = _END
                    break
        self.wait_s += time.perf_counter() - started
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._halt.set()
        self.reader.close()
        self.join(timeout=30)


class FrameSink(Protocol):
    """Where the encode thread puts output frames: ``SegmentSink``, or one farm segment's file."""

    def put(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class Renderer(Protocol):
    """Makes a job's missing segments elsewhere (the render farm) instead of in this process.

    ``kept_segments`` says, when a job resumes, which recorded segments stand (in any order, not
    only a run from frame 0); ``render`` makes the rest and records each in ``job.manifest``.
    """

    def kept_segments(self, manifest: Manifest, work_dir: Path, *, ffmpeg: FFmpeg) -> list[Segment]: ...
    def render(self, job: Any, info: VideoInfo, *, work_dir: Path, control: JobControl,
               on_progress: ProgressCallback | None) -> tuple[Any, dict[str, Any]]: ...


class _Encoder(threading.Thread):
    """Writes frames behind the model loop; ``finish`` closes the open segment cleanly."""

    def __init__(self, sink: FrameSink, size: int) -> None:
        super().__init__(name="midframe-encode", daemon=True)
        self.sink = sink
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.error: BaseException | None = None
        self.wait_s = 0.0

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    self.sink.close()
                    return
                self.sink.put(item)
        except BaseException as exc:
            self.error = exc
            self.sink.abort()

    def put(self, frame: Any) -> None:
        started = time.perf_counter()
        while True:
            if self.error is not None:
                raise self.error
            if not self.is_alive():
                raise EngineError("the encode thread ended unexpectedly")
            try:
                self.queue.put(frame, timeout=0.2)
                break
            except queue.Full:
                continue
        self.wait_s += time.perf_counter() - started

    def finish(self, timeout: float | None = None) -> None:
        """Let everything queued be written and the open segment be closed; raise what failed."""
        if self.is_alive():
            self.put(_END)
        self.join(timeout)
        if self.error is not None:
            raise self.error

    def kill(self) -> None:
        """After a failure: stop without closing the open segment."""
        self.sink.abort()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        try:
            self.queue.put_nowait(_END)
        except queue.Full:
            pass
        self.join(timeout=30)


# --- the model loop ----------------------------------------------------------------------------


@dataclass
class _Counts:
    model_s: float = 0.0
    interpolated: int = 0
    static: int = 0
    cut: int = 0


class _Slot:
    """A place in the output order for the result of pair ``k`` of the current batch."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k


class _FrameLoop:
    def __init__(
        self,
        *,
        timeline: Timeline,
        start: int,
        engine: EngineConfig,
        batch_size: int,
        interpolator: Interpolator,
        decoder: _Decoder,
        encoder: _Encoder,
        control: JobControl,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.timeline = timeline
        self.start = start
        self.engine = engine
        self.batch_size = batch_size
        self.interpolator = interpolator
        self.decoder = decoder
        self.encoder = encoder
        self.control = control
        self.on_progress = on_progress
        self.counts = _Counts()
        self.sent = start
        self._window: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._highest = -1
        self._decision: tuple[int, scenes.SceneDecision] | None = None
        self._batch: list[FramePair] = []
        self._pending: list[np.ndarray | _Slot] = []
        self._since_checkpoint = 0
        self._started = time.monotonic()
        self._last_progress = 0.0
        self._paused_s = 0.0

    def _fetch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Source frame ``index`` and its thumbnail, reading ahead to it."""
        while self._highest < index:
            item = self.decoder.get()
            if item is _END:
                raise MidframeError(f"the decoder ended before source frame {index}")
            got, frame, thumb = item
            self._highest = got
            self._window[got] = (frame, thumb)
        return self._window[index]

    def _source(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Like ``_fetch``, letting go of the frames before ``index`` (never needed again)."""
        for old in [key for key in self._window if key < index]:
            del self._window[old]
        return self._fetch(index)

    def _decide(self, index: int, a_thumb: np.ndarray, b_thumb: np.ndarray) -> scenes.SceneDecision:
        if self._decision is None or self._decision[0] != index:
            decision = scenes.classify(
                a_thumb,
                b_thumb,
                scene_threshold=self.engine.scene_threshold,
                static_threshold=self.engine.static_threshold,
                scene_detect=self.engine.scene_detect,
            )
            self._decision = (index, decision)
        return self._decision[1]

    def run(self) -> None:
        self.control.checkpoint()
        self._progress(force=True)
        batch_size = self.batch_size
        for out in self.timeline.frames(self.start):
            a, a_thumb = self._source(out.source)
            if out.t == 0.0:
                item: np.ndarray | _Slot = a
            else:
                b, b_thumb = self._fetch(out.source + 1)
                decision = self._decide(out.source, a_thumb, b_thumb)
                if decision.kind == "motion":
                    self._batch.append(FramePair(index=out.source, a=a, b=b, t=out.t))
                    item = _Slot(len(self._batch) - 1)
                else:
                    if decision.kind == "cut":
                        self.counts.cut += 1
                    else:
                        self.counts.static += 1
                    item = a if scenes.hold_frame(out.t) == "a" else b
            if self._batch:
                self._pending.append(item)
            else:
                self._send(item)
            if len(self._batch) >= batch_size:
                self._flush()
            elif not self._batch and self._since_checkpoint >= batch_size:
                self._between_batches()
        self._flush()
        self._progress(force=True)

    def _send(self, frame: np.ndarray) -> None:
        self.encoder.put(frame)
        self.sent += 1
        self._since_checkpoint += 1

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            started = time.perf_counter()
            try:
                results = self.interpolator.interpolate(batch)
            except MidframeError:
                raise
            except Exception as exc:
                raise EngineError(f"the {self.interpolator.name} engine failed: {type(exc).__name__}: {exc}") from exc
            self.counts.model_s += time.perf_counter() - started
            if len(results) != len(batch):
                raise EngineError(f"the {self.interpolator.name} engine returned {len(results)} frames for {len(batch)} pairs")
            self.counts.interpolated += len(batch)
            pending, self._pending = self._pending, []
            for item in pending:
                self._send(results[item.k] if isinstance(item, _Slot) else item)
        self._between_batches()

    def _between_batches(self) -> None:
        self._since_checkpoint = 0
        self._progress()
        before = time.monotonic()
        self.control.checkpoint()
        self._paused_s += time.monotonic() - before

    def _progress(self, *, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        elapsed = now - self._started - self._paused_s
        made = self.sent - self.start
        fps = made / elapsed if elapsed > 0 else 0.0
        remaining = self.timeline.frames_out - self.sent
        eta = remaining / fps if fps > 0 else (0.0 if remaining == 0 else None)
        self.on_progress(Progress(self.sent, self.timeline.frames_out, fps, elapsed, eta))


# --- convert -----------------------------------------------------------------------------------


@dataclass
class _Job:
    manifest: Manifest
    plan: OutputPlan
    engine: EngineConfig
    timeline: Timeline


def _reset_work_dir(work_dir: Path) -> None:
    if work_dir.exists():
        if not work_dir.is_dir() or not is_work_folder(work_dir):
            raise OutputError(work_dir, "exists and is not a midframe work folder; not touching it")
        shutil.rmtree(work_dir)
    try:
        work_dir.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(work_dir.parent, f"cannot create the work folder: {exc.strerror or exc}") from None


def _matching_manifest(work_dir: Path, fingerprint: Fingerprint, destination: Path, resume: ResumeConfig) -> Manifest | None:
    if not resume.enabled or not work_dir.is_dir():
        return None
    manifest = load_manifest(work_dir)
    if manifest is None:
        return None
    if manifest.fingerprint != fingerprint:
        logger.info("{}: the source changed since this work was started; starting over", work_dir)
        return None
    if manifest.destination_suffix != destination.suffix.lower():
        logger.info("{}: the work was for a {} file; starting over", work_dir, manifest.destination_suffix)
        return None
    return manifest


def _remove_strays(work_dir: Path, keep: set[str]) -> None:
    """Delete segment files the manifest does not list (a partial one from a kill) and temporaries."""
    for entry in work_dir.iterdir():
        if entry.name != MANIFEST_NAME and entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _prepare(
    info: VideoInfo,
    *,
    fingerprint: Fingerprint,
    destination: Path,
    work_dir: Path,
    engine: EngineConfig,
    output: OutputConfig,
    resume: ResumeConfig,
    ffmpeg: FFmpeg,
    renderer: Renderer | None = None,
) -> _Job:
    manifest = _matching_manifest(work_dir, fingerprint, destination, resume)
    if manifest is not None:
        engine = EngineConfig.model_validate(manifest.engine)
        plan = OutputPlan.from_json(manifest.plan)
        timeline = build_timeline(info, engine)
        if timeline.frames_out == manifest.frames_out:
            if renderer is not None:
                good = renderer.kept_segments(manifest, work_dir, ffmpeg=ffmpeg)
            else:
                good = verified_segments(manifest, work_dir, ffmpeg=ffmpeg)
            if good != manifest.segments:
                manifest.segments = good
                manifest.save(work_dir)
            _remove_strays(work_dir, {segment.file for segment in good})
            if good:
                logger.info("{}: resuming at output frame {} of {}", info.path.name, manifest.frames_done, timeline.frames_out)
            return _Job(manifest, plan, engine, timeline)
        logger.warning("{}: the recorded work does not fit this source's timeline; starting over", work_dir)
    _reset_work_dir(work_dir)
    timeline = build_timeline(info, engine)
    plan = make_plan(info, engine=engine, output=output, resume=resume, destination=destination,
                     work_dir=work_dir, ffmpeg=ffmpeg, timeline=timeline)
    manifest = Manifest(
        source=str(info.path),
        fingerprint=fingerprint,
        destination_suffix=destination.suffix.lower(),
        engine=engine.model_dump(mode="json"),
        output=output.model_dump(mode="json"),
        resume=resume.model_dump(mode="json"),
        plan=plan.to_json(),
        frames_out=timeline.frames_out,
    )
    manifest.save(work_dir)
    return _Job(manifest, plan, engine, timeline)


def _render(
    job: _Job,
    info: VideoInfo,
    *,
    work_dir: Path,
    interpolator: Interpolator,
    ffmpeg: FFmpeg,
    control: JobControl,
    on_progress: ProgressCallback | None,
) -> tuple[_Counts, dict[str, Any]]:
    start = job.manifest.frames_done
    first_source = job.timeline.frame(start).source
    threads = thread_plan_for(interpolator)
    reader = frame_reader(info, job.plan, ffmpeg=ffmpeg, start=first_source, threads=threads.decode)
    sink = SegmentSink(work_dir=work_dir, manifest=job.manifest, plan=job.plan, timeline=job.timeline,
                       start=start, ffmpeg=ffmpeg, threads=threads.encode)
    return run_frames(timeline=job.timeline, start=start, engine=job.engine, interpolator=interpolator,
                      reader=reader, sink=sink, control=control, on_progress=on_progress)


def frame_reader(info: VideoInfo, plan: OutputPlan, *, ffmpeg: FFmpeg, start: int, threads: int | None) -> FrameReader:
    """The decoder of a planned job's source from frame ``start``: the one place that says how a job's
    frames are read, for the whole file and for one farm segment alike."""
    return FrameReader(info, ffmpeg=ffmpeg, start=start, keep_rotation=plan.keep_rotation, threads=threads)


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
) -> tuple[_Counts, dict[str, Any]]:
    """The three threads over output frames ``start .. timeline.frames_out - 1``: ``reader`` must
    start at the source frame of ``start``; ``sink`` takes every output frame in order.

    The whole file (``convert``) and one farm segment (``midframe.engine.ranges``) both run here. The
    caller gives ``reader`` and ``sink`` their thread counts (``thread_plan_for(interpolator)``)."""
    threads = thread_plan_for(interpolator)
    batch_size = batch_size_for(engine, interpolator)
    size = _queue_frames(reader.frame_bytes, batch_size)
    decoder = _Decoder(reader, size)
    encoder = _Encoder(sink, size)
    loop = _FrameLoop(timeline=timeline, start=start, engine=engine, batch_size=batch_size,
                      interpolator=interpolator, decoder=decoder, encoder=encoder, control=control,
                      on_progress=on_progress)
    opencv_threads = cv2.getNumThreads()
    if threads.opencv is not None:
        cv2.setNumThreads(threads.opencv)  # process-wide; given back below
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
    decoder.stop()
    encoder.finish()
    waits = {"decode_wait_s": round(decoder.wait_s, 3), "encode_wait_s": round(encoder.wait_s, 3),
             "batch_size": batch_size, "threads": {"decode": threads.decode, "encode": threads.encode,
                                                   "opencv": threads.opencv}}
    backend = getattr(interpolator, "backend", None)
    if backend:
        waits["backend"] = backend
    return loop.counts, waits


def _record_engine(job: _Job, name: str, *, work_dir: Path, resuming: bool) -> None:
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


def _move_into_place(joined: Path, destination: Path) -> None:
    if destination.exists():
        raise OutputError(destination, "already exists; not overwriting it")
    try:
        os.replace(joined, destination)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # on another file system: copy beside the destination first
            raise OutputError(destination, f"cannot write it: {exc.strerror or exc}") from None
    partial = destination.with_name(f".{destination.name}.midframe-partial")
    try:
        shutil.copyfile(joined, partial)
        os.replace(partial, destination)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputError(destination, f"cannot write it: {exc.strerror or exc}") from None


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
) -> PipelineReport:
    """Convert ``source`` into ``destination`` (which must not exist); see API.md and the module doc."""
    started = time.monotonic()
    source, destination, work_dir = Path(source), Path(destination), Path(work_dir)
    control = control or JobControl()
    info = probe(source, ffmpeg=ffmpeg)
    fingerprint = Fingerprint.of(source)
    if destination.exists():
        raise OutputError(destination, "already exists; not overwriting it")
    job = _prepare(info, fingerprint=fingerprint, destination=destination, work_dir=work_dir, engine=engine,
                   output=output, resume=resume, ffmpeg=ffmpeg, renderer=renderer)
    start = job.manifest.frames_done
    counts, extra = _Counts(), {}
    engine_name, device = job.engine.name, job.engine.device
    if renderer is not None:
        start = sum(segment.frames for segment in job.manifest.segments)
        counts, extra = renderer.render(job, info, work_dir=work_dir, control=control, on_progress=on_progress)
        device = "farm"
    elif start < job.timeline.frames_out:
        control.checkpoint()
        interpolator = make_interpolator(job.engine)
        try:
            _record_engine(job, interpolator.name, work_dir=work_dir, resuming=start > 0)
            interpolator.load()
            engine_name, device = interpolator.name, interpolator.device
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
                  fps=job.timeline.fps_out, suffix=destination.suffix, ffmpeg=ffmpeg)
    _move_into_place(joined, destination)
    shutil.rmtree(work_dir, ignore_errors=True)
    wall = time.monotonic() - started
    return PipelineReport(
        source=source,
        output=destination,
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
        resumed_from_frame=start,
        extra={
            **extra,
            "join_s": round(time.monotonic() - joining, 3),
            "segments": len(job.manifest.segments),
            "pix_fmt": job.plan.encode.pix_fmt,
            "codec": job.plan.encode.codec,
        },
    )
