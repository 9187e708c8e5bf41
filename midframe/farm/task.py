"""The segment task a farm worker runs, and the worker plugin that keeps its engine warm.

A task carries names, not video: the job's work folder and source as the coordinator sees them, the
segment's output frames, the coordinator's fingerprint of the source (its size and the hashes of its
first and last MiB: the worker renders only from a file with the same, and says which file it read in
the segment's record), and the coordinator's probe of the source (Dask moves it once to each worker
that needs it, so no worker reads a whole film over the share to probe it again). The worker maps the
names (``farm.path_map``), reads the plan from the work folder's manifest, makes the segment there
(``midframe.engine.ranges.render_range``) and returns its record. The plugin lives as long as the
worker process: engines are loaded once per device and reused by every task with the same settings.

A worker that cannot see the shared folder, or lacks what the engine needs (weights, the device),
says so in the error it returns and offers no slots from then on, so it gets no more tasks. A worker
that sees another file under the source's name (``farm.path_map`` pointing at another copy) refuses
the segment with a ``SourceMismatch`` naming the mapping; the coordinator gives it to another worker.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from distributed import Event, WorkerPlugin, get_worker
from distributed.utils import sync
from loguru import logger

from midframe.config import EngineConfig
from midframe.engine.conversion import JobControl
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.interpolators.base import Interpolator
from midframe.engine.manifest import load_manifest
from midframe.engine.pipeline import use_recorded_scenes
from midframe.engine.plan import OutputPlan, build_timeline
from midframe.engine.probe import VideoInfo
from midframe.engine.ranges import render_range
from midframe.errors import Aborted, DeviceError, MidframeError, TransientError, WeightsError
from midframe.farm.paths import map_path, mapping_said
from midframe.farm.remote import MISMATCH, FarmTaskError, to_remote
from midframe.farm.slots import SLOT
from midframe.fs.identity import Fingerprint
from midframe.fs.safe_write import atomic_write

PLUGIN_NAME = "midframe"
RECORD_SUFFIX = ".json"
STOP_POLL_S = 0.25
RETIRE_CLOSE_S = 1.0
MakeInterpolator = Callable[[EngineConfig], Interpolator]


@dataclass(frozen=True)
class SegmentTask:
    """One segment of one job, in the coordinator's terms."""

    job: str  # the work folder's name, for logs
    work_dir: str
    source: str
    start: int
    end: int
    token: str  # unique per submission: the part file's name, and the stop event's
    stop_event: str
    fingerprint: Fingerprint | None = None  # the coordinator's of the source (None: the manifest's)


def render_segment(task: SegmentTask, info: VideoInfo) -> dict[str, Any]:
    """The Dask task: make ``task``'s segment on this worker from the coordinator's probe ``info`` of
    the source; its record (see ``FarmPlugin.render``)."""
    worker = get_worker()
    plugin = worker.plugins[PLUGIN_NAME]
    assert isinstance(plugin, FarmPlugin), "this worker was not started by `midframe farm worker`"
    return plugin.render(task, info)


class _StopControl(JobControl):
    """Aborts the frame loop once the coordinator sets the job's stop event (cancel, stop)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self._event = event
        self._polled = float("-inf")  # the first checkpoint asks at once

    def checkpoint(self, *, poll_s: float = 0.5) -> None:
        now = time.monotonic()
        if now - self._polled >= STOP_POLL_S:
            self._polled = now
            try:
                stopped = self._event.is_set()
            except Exception as exc:  # the scheduler is gone: the coordinator resubmits anyway
                logger.warning("cannot reach the scheduler for the stop flag: {}", exc)
                stopped = True
            if stopped:
                self.abort("stopped by the coordinator")
        super().checkpoint(poll_s=poll_s)


class FarmPlugin(WorkerPlugin):
    """Everything a worker process keeps between tasks: engines, probes, its fitness."""

    name = PLUGIN_NAME

    def __init__(
        self,
        *,
        engine: EngineConfig,
        devices: list[str],
        path_map: Mapping[str, str],
        ffmpeg: FFmpeg,
        make_interpolator: MakeInterpolator,
    ) -> None:
        self.engine = engine
        self.devices = list(devices)
        self.path_map = dict(path_map)
        self.ffmpeg = ffmpeg
        self._make_interpolator = make_interpolator
        self._free: queue.Queue[str] = queue.Queue()
        for device in self.devices:
            self._free.put(device)
        self._engines: dict[str, tuple[str, Interpolator]] = {}
        self._lock = threading.Lock()
        self._worker: Any = None
        self.address = "(not started)"
        self.unfit: str | None = None
        self.segments_done = 0

    # --- the worker's life ------------------------------------------------------------------------

    def warm(self) -> None:
        """Load the configured engine on every device now, so the first segment does not wait for it
        and a worker without weights or device says so at start-up."""
        for device in self.devices:
            self._interpolator(self.engine, device)

    def setup(self, worker: Any) -> None:
        self._worker = worker
        self.address = worker.address

    def teardown(self, worker: Any) -> None:
        """The engines stay loaded: a worker that lost its scheduler is followed by a new one (``close``)."""
        self._worker = None

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for _key, interpolator in engines:
            interpolator.close()

    # --- one task --------------------------------------------------------------------------------

    def render(self, task: SegmentTask, probed: VideoInfo) -> dict[str, Any]:
        """Make the segment; the record the coordinator adds to the manifest."""
        if self.unfit is not None:
            raise FarmTaskError("TransientError", self.unfit, worker=self.address, unfit=True)
        work_dir = Path(map_path(task.work_dir, self.path_map))
        source = Path(map_path(task.source, self.path_map))
        renames = {str(source): task.source, str(work_dir): task.work_dir}
        if not work_dir.is_dir() or not source.is_file():
            missing, theirs = (work_dir, task.work_dir) if not work_dir.is_dir() else (source, task.source)
            self._retire(f"cannot see the shared folder: {missing} is not there (the coordinator's {theirs}); "
                         "mount the share here or set farm.path_map in this worker's config")
        manifest = load_manifest(work_dir)
        if manifest is None:
            raise FarmTaskError("TransientError", f"no work manifest in {task.work_dir}", worker=self.address)
        engine = EngineConfig.model_validate(manifest.engine)
        plan = OutputPlan.from_json(manifest.plan)
        expected = task.fingerprint or manifest.fingerprint
        device = self._free.get()
        logger.info("job {}: making segment {}..{} on {}", task.job, task.start, task.end, device)
        try:
            self._same_source(task, source, expected)
            info = replace(probed, path=source)
            timeline = build_timeline(info, engine)
            if timeline.frames_out != manifest.frames_out:
                raise TransientError(f"{task.source}: this worker reads {timeline.frames_out} output frames, "
                                     f"the plan {manifest.frames_out}; is it another midframe version?")
            try:
                interpolator = self._interpolator(engine, device)
            except (WeightsError, DeviceError) as exc:
                self._retire(f"cannot run the {engine.name} engine on {device}: {exc}")
            use_recorded_scenes(interpolator, manifest)  # engine auto: the coordinator's per-scene choice
            segment, times = render_range(
                info=info, plan=plan, timeline=timeline, engine=engine, start=task.start, end=task.end,
                work_dir=work_dir, token=task.token, interpolator=interpolator, ffmpeg=self.ffmpeg,
                control=_StopControl(Event(task.stop_event)),
            )
            try:  # and still the same once it is made (replaced meanwhile: never handed back)
                seen = self._same_source(task, source, expected)
            except FarmTaskError:
                (work_dir / segment.file).unlink(missing_ok=True)
                raise
        except FarmTaskError:
            raise
        except Aborted as exc:
            logger.info("job {}: segment {}..{} stopped by the coordinator", task.job, task.start, task.end)
            raise FarmTaskError("Aborted", str(exc), worker=self.address) from None
        except MidframeError as exc:
            raise self._remote(exc, renames) from None
        except Exception as exc:
            logger.exception("segment {}..{} of job {} failed", task.start, task.end, task.job)
            raise self._remote(exc, renames) from None
        finally:
            self._free.put(device)
        record = {**asdict(segment), "worker": self.address, "device": device, "times": asdict(times),
                  "source": seen.to_json()}
        atomic_write(work_dir / f"{segment.file}{RECORD_SUFFIX}", json.dumps(record))
        self.segments_done += 1
        logger.info("job {}: made segment {}..{} in {:.1f} s on {}", task.job, task.start, task.end,
                    times.total_s, device)
        return record

    def _same_source(self, task: SegmentTask, source: Path, expected: Fingerprint) -> Fingerprint:
        """This worker's fingerprint of ``source``; a ``SourceMismatch`` naming the path mapping when its
        content is not the coordinator's (``expected``)."""
        seen = Fingerprint.of(source)
        change = expected.content_change(seen)
        if change is not None:
            raise FarmTaskError(MISMATCH, f"{task.source}: this worker reads another file at {source} (it {change}); "
                                f"{mapping_said(task.source, self.path_map)}; point farm.path_map in this worker's "
                                "config at the share the coordinator reads", worker=self.address)
        return seen

    def _remote(self, error: BaseException, renames: Mapping[str, str]) -> FarmTaskError:
        remote = to_remote(error, worker=self.address)
        for local, theirs in renames.items():
            if remote.path == local:
                remote.path = theirs
            remote.message = remote.message.replace(local, theirs)
        return remote

    def _retire(self, problem: str) -> None:
        """Take no more tasks: slots to 0 at the scheduler, then, once this task's error is out, close
        this Dask worker so that the scheduler gives the segments queued here to others (a task waiting
        for a slot that is gone would wait for ever); ``midframe farm worker`` comes back without slots."""
        self.unfit = problem
        logger.error("this farm worker takes no more tasks: {}", problem)
        worker = self._worker
        if worker is not None:
            try:
                sync(worker.loop, worker.set_resources, **{SLOT: 0.0})
            except Exception as exc:
                logger.warning("could not tell the scheduler: {}", exc)
            worker.loop.call_later(RETIRE_CLOSE_S, lambda: asyncio.ensure_future(
                worker.close(executor_wait=False, reason="midframe: this worker cannot work")))
        raise FarmTaskError("TransientError", problem, worker=self.address, unfit=True)

    # --- kept between tasks ------------------------------------------------------------------------

    def _interpolator(self, engine: EngineConfig, device: str) -> Interpolator:
        """The loaded engine for ``engine`` on ``device``; one per device, replaced when settings change."""
        settings = engine.model_copy(update={"device": device})
        key = settings.model_dump_json()
        with self._lock:
            current = self._engines.get(device)
        if current is not None and current[0] == key:
            return current[1]
        if current is not None:
            current[1].close()
        interpolator = self._make_interpolator(settings)
        interpolator.load()
        with self._lock:
            self._engines[device] = (key, interpolator)
        return interpolator
