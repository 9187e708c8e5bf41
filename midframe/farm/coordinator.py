"""The daemon's side of the farm: one Dask client, a job's segments submitted, collected, recorded.

The daemon's worker converts a job as always (``midframe.engine.pipeline.convert``: plan, join,
verify, publish); with a farm, the segments in between are made by ``_JobRenderer`` on the farm's
workers. The job store stays the source of truth and the manifest records each segment as it comes
back (in any order, with the worker that made it), so after any restart only what is missing is
submitted. The scheduler keeps nothing the daemon needs: it may restart at any time.

A monitor thread keeps the connection (reconnecting when the scheduler comes back) and the farm's
state for ``status``: ``{"scheduler", "workers", "busy", "connected", "problem"}``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from distributed import Client, Event, KilledWorker
from loguru import logger

from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.job import JobControl, PipelineReport, Progress, ProgressCallback
from midframe.engine.manifest import Manifest, Segment
from midframe.engine.plan import OutputPlan
from midframe.engine.probe import VideoInfo, count_video_packets
from midframe.engine.ranges import PART_MARK, segment_ranges
from midframe.engine.segments import segment_name
from midframe.errors import FarmUnavailable, TransientError
from midframe.farm.remote import FarmTaskError, from_remote
from midframe.farm.slots import SLOT, task_resources
from midframe.farm.task import RECORD_SUFFIX, SegmentTask, render_segment

MONITOR_S = 2.0
CONNECT_TIMEOUT_S = 5.0
WAIT_STEP_S = 0.5
STOP_GRACE_S = 15.0
KEY_PREFIX = "midframe-segment"
Convert = Callable[..., PipelineReport]


class FarmCoordinator:
    """Holds the Dask client for the daemon; ``convert`` has the signature of the pipeline's."""

    def __init__(
        self,
        scheduler: str,
        *,
        resources: Mapping[str, float],
        fallback_local: bool,
        convert: Convert,
        ffmpeg: FFmpeg,
        make_client: Callable[[str], Client] | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.scheduler = scheduler
        self.resources = task_resources(resources)
        self.fallback_local = fallback_local
        self._convert = convert
        self._ffmpeg = ffmpeg
        self._make_client = make_client or (lambda address: Client(address, timeout=CONNECT_TIMEOUT_S,
                                                                      set_as_default=False))
        self._on_change = on_change
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._state: dict[str, Any] = {"scheduler": scheduler, "workers": 0, "busy": 0, "connected": False,
                                       "problem": f"connecting to {scheduler}"}
        self._slots = 0
        self._live: dict[str, Counter[str]] = {}
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    # --- connection --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._monitor, name="midframe-farm", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception as exc:  # closing a client whose scheduler is gone
                logger.debug("closing the farm client: {}", exc)

    def _monitor(self) -> None:
        while not self._stop.is_set():
            self._refresh()
            self._stop.wait(MONITOR_S)

    def _refresh(self) -> None:
        was = self._connected.is_set()
        client = self._client
        if client is not None and client.status not in ("running", "connecting"):
            with self._lock:
                self._client = None
            client = None
        if client is None:
            try:
                client = self._make_client(self.scheduler)
            except (OSError, TimeoutError) as exc:
                self._set_problem(f"farm.scheduler: {self.scheduler} does not answer ({exc or type(exc).__name__}); "
                                  "start it with `midframe farm scheduler`", connected=False)
                if was:
                    self._on_change()
                return
            with self._lock:
                self._client = client
            logger.info("connected to the farm scheduler {}", self.scheduler)
        try:
            info = client.scheduler_info(n_workers=-1)
            processing = client.processing()
        except Exception as exc:  # the scheduler went away between two calls: next round reconnects
            self._set_problem(f"farm.scheduler: lost the connection to {self.scheduler} ({exc or type(exc).__name__})", connected=False)
            if was:
                self._on_change()
            return
        workers = info.get("workers", {})
        slots = [meta.get("resources", {}).get(SLOT, 0) for meta in workers.values()]
        busy = sum(1 for keys in processing.values() if any(str(key).startswith(KEY_PREFIX) for key in keys))
        fit = sum(1 for count in slots if count > 0)
        problem = None if fit else f"no farm workers are connected to {self.scheduler} yet"
        with self._lock:
            self._slots = int(sum(slots))
            self._state = {"scheduler": self.scheduler, "workers": fit, "busy": busy, "connected": True,
                           "problem": problem}
        self._connected.set()
        if not was:
            self._on_change()

    def _set_problem(self, problem: str, *, connected: bool) -> None:
        with self._lock:
            if self._state.get("problem") != problem:
                logger.warning("{}", problem)
            self._state = {**self._state, "connected": connected, "problem": problem, "busy": 0,
                           "workers": self._state["workers"] if connected else 0}
        if not connected:
            self._connected.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def client(self) -> Client:
        with self._lock:
            client = self._client
        if client is None or client.status != "running" or not self._connected.is_set():
            raise FarmUnavailable(self.state()["problem"] or f"farm.scheduler: {self.scheduler} is not connected")
        return client

    def window(self) -> int:
        """Segments a job keeps submitted at once: every slot of the farm, and one waiting."""
        with self._lock:
            return max(1, self._slots) + 1

    # --- jobs ------------------------------------------------------------------------------------

    def convert(self, source: Path, destination: Path, **kwargs: Any) -> PipelineReport:
        """The pipeline's ``convert`` with the segments made on the farm (or here, see fallback_local)."""
        if not self.connected:
            if self.fallback_local:
                logger.warning("{}; converting {} on this machine (farm.fallback_local)",
                               self.state()["problem"], Path(source).name)
                return self._convert(source, destination, **kwargs)
            raise FarmUnavailable(self.state()["problem"] or f"farm.scheduler: {self.scheduler} is not connected")
        work_dir = Path(kwargs["work_dir"])
        renderer = _JobRenderer(self, source=Path(source), ffmpeg=self._ffmpeg)
        with self._lock:
            self._live[str(work_dir)] = renderer.workers
        try:
            return self._convert(source, destination, renderer=renderer, **kwargs)
        finally:
            with self._lock:
                self._live.pop(str(work_dir), None)

    def live_workers(self, work_dir: Path) -> dict[str, int] | None:
        """For a job being converted: how many of its segments each worker made so far."""
        with self._lock:
            found = self._live.get(str(work_dir))
            return None if found is None else dict(found)


def _record(work_dir: Path, segment: Segment) -> dict[str, Any]:
    """The worker's record beside a segment, or {} when there is none (killed before writing it)."""
    try:
        return json.loads((work_dir / f"{segment.file}{RECORD_SUFFIX}").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class _JobRenderer:
    """``pipeline.Renderer`` for one job: which segments stand, and the farm makes the others."""

    def __init__(self, coordinator: FarmCoordinator, *, source: Path, ffmpeg: FFmpeg) -> None:
        self.coordinator = coordinator
        self.source = source
        self.ffmpeg = ffmpeg
        self.workers: Counter[str] = Counter()
        self.times: list[dict[str, Any]] = []
        self._probed: Any = None

    def _probe_on_farm(self, client: Client, info: VideoInfo) -> Any:
        """The source's probe as Dask data: it travels once to each worker that needs it (from here or
        from another worker), so no worker reads the whole source over the share to probe it again.
        Scattered again when the scheduler forgot it (it restarted)."""
        if self._probed is None or self._probed.status in ("cancelled", "lost", "error"):
            self._probed = client.scatter(info, hash=False)
        return self._probed

    def _intact(self, work_dir: Path, segment: Segment) -> bool:
        return count_video_packets(work_dir / segment.file, ffmpeg=self.ffmpeg) == segment.frames

    def kept_segments(self, manifest: Manifest, work_dir: Path, *, ffmpeg: FFmpeg) -> list[Segment]:
        """Recorded segments that read back whole, and segments a worker finished but the coordinator
        had not recorded yet (it was killed): nothing already made is made again."""
        plan = OutputPlan.from_json(manifest.plan)
        recorded = {segment.start: segment for segment in manifest.segments}
        kept: list[Segment] = []
        for start, end in segment_ranges(manifest.frames_out, plan.segment_frames):
            segment = recorded.get(start)
            if segment is None or segment.end != end:
                record = _record(work_dir, Segment(file=segment_name(start, plan.segment_ext), start=start,
                                                   end=end, source_end=0))
                if record.get("start") != start or record.get("end") != end:
                    continue
                segment = Segment(file=record["file"], start=start, end=end, source_end=int(record["source_end"]))
                if not self._intact(work_dir, segment):
                    continue
                logger.info("{}: segment {}..{} was made before the restart; keeping it", work_dir.name, start, end)
            elif not self._intact(work_dir, segment):
                logger.warning("{}: segment {} does not read back whole; making it again", work_dir.name, segment.file)
                continue
            kept.append(segment)
            self.workers[_record(work_dir, segment).get("worker", "unknown")] += 1
        return kept

    def render(self, job: Any, info: VideoInfo, *, work_dir: Path, control: JobControl,
               on_progress: ProgressCallback | None) -> tuple[Any, dict[str, Any]]:
        from midframe.engine.frameloop import Counts

        manifest: Manifest = job.manifest
        done = {segment.start for segment in manifest.segments}
        todo = deque(r for r in segment_ranges(job.timeline.frames_out, job.plan.segment_frames) if r[0] not in done)
        counts = Counts()
        started = time.monotonic()
        made_before = sum(segment.frames for segment in manifest.segments)
        self._progress(on_progress, manifest, job.timeline.frames_out, made_before, started)
        if not todo:
            return counts, self._extra()
        client = self.coordinator.client()
        stop = Event(f"midframe-stop-{uuid.uuid4().hex}", client=client)

        pending: dict[Any, tuple[tuple[int, int], float]] = {}
        woken = threading.Event()
        try:
            while todo or pending:
                if control.aborted:
                    raise _Stop
                while todo and not control.paused and len(pending) < self.coordinator.window():
                    start, end = todo.popleft()
                    task = SegmentTask(job=work_dir.name, work_dir=str(work_dir), source=str(self.source), start=start,
                                       end=end, token=uuid.uuid4().hex[:12], stop_event=stop.name)
                    future = client.submit(render_segment, task, self._probe_on_farm(client, info),
                                           key=f"{KEY_PREFIX}-{work_dir.name}-{start}-{task.token}",
                                           resources=self.coordinator.resources, pure=False)
                    pending[future] = ((start, end), time.monotonic())
                    future.add_done_callback(lambda _future: woken.set())
                    logger.info("{}: segment {}..{} submitted", work_dir.name, start, end)
                woken.wait(WAIT_STEP_S)
                woken.clear()
                for future in [future for future in pending if future.done()]:
                    span, submitted = pending.pop(future)
                    self._collect(future, span, submitted, work_dir, manifest, counts, todo, client)
                self._progress(on_progress, manifest, job.timeline.frames_out, made_before, started)
        except _Stop:
            self._cancel(client, stop, pending)
            _wait_for_writers(work_dir)
            control.checkpoint()
            raise
        except BaseException:
            self._cancel(client, stop, pending)
            _wait_for_writers(work_dir)
            raise
        return counts, self._extra()

    def _collect(self, future: Any, span: tuple[int, int], submitted: float, work_dir: Path, manifest: Manifest,
                 counts: Any, todo: deque[tuple[int, int]], client: Client) -> None:
        start, end = span
        if future.status == "finished":
            record = future.result()
            segment = Segment(file=record["file"], start=start, end=end, source_end=int(record["source_end"]))
            if not self._intact(work_dir, segment):
                logger.warning("{}: segment {} from {} does not read back whole; making it again",
                               work_dir.name, segment.file, record.get("worker"))
                todo.appendleft(span)
                return
            manifest.segments = sorted([*manifest.segments, segment], key=lambda item: item.start)
            manifest.save(work_dir)
            worker = record.get("worker", "unknown")
            self.workers[worker] += 1
            counts.model_s += record.get("times", {}).get("model_s", 0.0)
            self.times.append({**record.get("times", {}), "worker": worker, "start": start,
                               "round_trip_s": round(time.monotonic() - submitted, 4)})
            return
        try:
            error = future.exception()
        except CancelledError:
            error = None
        if error is None or isinstance(error, CancelledError):
            if client.status != "running":
                raise FarmUnavailable(f"farm.scheduler: lost {self.coordinator.scheduler} while converting")
            todo.appendleft(span)  # the scheduler forgot it (restarted): submit it again
            return
        if isinstance(error, FarmTaskError) and error.unfit:
            logger.error("{}: segment {}..{}: {}; trying another worker", work_dir.name, start, end, error)
            if self.coordinator.state()["workers"] <= 1 and not self._fit_workers(client):
                raise from_remote(error)
            todo.appendleft(span)
            return
        if isinstance(error, FarmTaskError):
            raise from_remote(error)
        if isinstance(error, KilledWorker):
            raise TransientError(f"segment {start}..{end} was on {error.last_worker} and two others when they died")
        raise TransientError(f"segment {start}..{end} failed on the farm: {type(error).__name__}: {error}")

    @staticmethod
    def _fit_workers(client: Client) -> bool:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        return any(meta.get("resources", {}).get(SLOT, 0) > 0 for meta in workers.values())

    @staticmethod
    def _cancel(client: Client, stop: Event, pending: Mapping[Any, Any]) -> None:
        """Stop the job's running segments (they check the event between batches) and drop the rest."""
        if not pending:
            return
        try:
            stop.set()
            client.cancel(list(pending))
        except Exception as exc:  # the scheduler is gone: nothing left to cancel there
            logger.debug("cancelling segments: {}", exc)

    def _progress(self, on_progress: ProgressCallback | None, manifest: Manifest, total: int, made_before: int,
                  started: float) -> None:
        if on_progress is None:
            return
        made = sum(segment.frames for segment in manifest.segments)
        elapsed = time.monotonic() - started
        fps = (made - made_before) / elapsed if elapsed > 0 else 0.0
        eta = (total - made) / fps if fps > 0 else (0.0 if made >= total else None)
        on_progress(Progress(made, total, fps, elapsed, eta))

    def _extra(self) -> dict[str, Any]:
        return {"workers": dict(self.workers), "farm_segments": self.times}


def _wait_for_writers(work_dir: Path, *, timeout_s: float = STOP_GRACE_S, quiet_s: float = 2.0) -> None:
    """After cancelling: until no segment is being written into ``work_dir`` any more (running ones stop
    between two batches and delete their part file, or finish and rename it), so that the work folder
    can be removed without a segment landing in it afterwards. A part file left by a dead worker is
    quiet at once; the wait is bounded anyway."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = time.time()
        try:
            busy = [entry for entry in work_dir.iterdir()
                    if PART_MARK in entry.name and now - entry.stat().st_mtime < quiet_s]
        except OSError:  # gone, or a part file renamed meanwhile: look again
            busy = [work_dir]
            if not work_dir.exists():
                return
        if not busy:
            return
        time.sleep(0.1)


class _Stop(Exception):
    """The job's control asked to stop; its segments are cancelled first."""

