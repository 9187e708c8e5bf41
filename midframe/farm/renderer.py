"""One job's segments on the farm: ``JobRenderer`` is the ``pipeline.Renderer`` the coordinator hands to
``convert``. It keeps the segments that stand (recorded, or finished by a worker after the coordinator
died), submits the others to the farm a window at a time, collects each as it comes back (in any order,
with the worker that made it) into the manifest, and on a stop or an error cancels what is out and waits
until nothing more is written into the work folder. The Dask client and the farm's state are the
coordinator's (:mod:`midframe.farm.coordinator`).

Only a segment made from the job's own source is kept: each task carries the manifest's fingerprint
of the source, and each record says which file its worker read (``source``). A worker that refused a
segment because it reads another file there (``SourceMismatch``), or whose record names another file
or none, gets no more of the job's segments (its segment file is deleted and made elsewhere); with no
other worker left the job fails this attempt with the worker's reason, which names its ``farm.path_map``.
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
from typing import Any, Protocol

from distributed import Client, Event, KilledWorker
from loguru import logger

from midframe.engine.conversion import JobControl, Progress, ProgressCallback
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.manifest import VERIFY_LAST_SEGMENTS, Manifest, Segment, segment_problem
from midframe.engine.plan import OutputPlan
from midframe.engine.probe import VideoInfo, count_video_packets
from midframe.engine.ranges import PART_MARK, segment_ranges
from midframe.engine.segments import segment_name
from midframe.errors import FarmUnavailable, SourceChanged, TransientError
from midframe.farm.remote import MISMATCH, FarmTaskError, from_remote
from midframe.farm.slots import SLOT
from midframe.farm.task import RECORD_SUFFIX, SegmentTask, render_segment
from midframe.fs.identity import Fingerprint


class FarmConnection(Protocol):
    """What a job's renderer needs of the farm (``coordinator.FarmCoordinator`` is the one): the connected
    client, how many segments to keep submitted, the resources a task asks for, the farm's state."""

    @property
    def scheduler(self) -> str: ...
    @property
    def resources(self) -> Mapping[str, float]: ...

    def client(self) -> Client: ...
    def window(self) -> int: ...
    def state(self) -> dict[str, Any]: ...


WAIT_STEP_S = 0.5
STOP_GRACE_S = 15.0
KEY_PREFIX = "midframe-segment"


def _record(work_dir: Path, segment: Segment) -> dict[str, Any]:
    """The worker's record beside a segment, or {} when there is none (killed before writing it)."""
    try:
        return json.loads((work_dir / f"{segment.file}{RECORD_SUFFIX}").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _made_from(record: Mapping[str, Any], expected: Fingerprint) -> str | None:
    """Why the segment of ``record`` may not be from the source ``expected`` fingerprints; None if it is."""
    try:
        seen = Fingerprint.from_json(record["source"])
    except (KeyError, TypeError, ValueError):
        return "its record does not say which file it was made from"
    change = expected.content_change(seen)
    return None if change is None else f"was made from another file (it {change})"


def segment_task(manifest: Manifest, *, work_dir: Path, source: Path, span: tuple[int, int],
                 stop_event: str) -> SegmentTask:
    """The task of one segment (``span``: its output frames) of the job ``manifest`` records: it carries
    the manifest's fingerprint of the source (the daemon's, when the daemon started the job), which the
    worker checks the file it reads against."""
    return SegmentTask(job=work_dir.name, work_dir=str(work_dir), source=str(source), start=span[0], end=span[1],
                       token=uuid.uuid4().hex[:12], stop_event=stop_event, fingerprint=manifest.fingerprint)


def _newest_files(work_dir: Path, segments: list[Segment], count: int) -> set[str]:
    """The ``count`` segment files written last (a missing one counts as newest: it fails anyway)."""
    def written(segment: Segment) -> float:
        try:
            return (work_dir / segment.file).stat().st_mtime
        except OSError:
            return float("inf")

    return {segment.file for segment in sorted(segments, key=written)[-count:]} if count > 0 else set()


class JobRenderer:
    """``pipeline.Renderer`` for one job: which segments stand, and the farm makes the others."""

    def __init__(self, coordinator: FarmConnection, *, source: Path, ffmpeg: FFmpeg,
                 count_frames: Callable[..., int | None] = count_video_packets) -> None:
        self.coordinator = coordinator
        self.source = source
        self.ffmpeg = ffmpeg
        self._count_frames = count_frames  # reads a segment back (a test counts the calls)
        self.workers: Counter[str] = Counter()
        self.times: list[dict[str, Any]] = []
        self._probed: Any = None
        self.refused: dict[str, FarmTaskError] = {}  # worker -> why it may not make this job's segments

    def _probe_on_farm(self, client: Client, info: VideoInfo) -> Any:
        """The source's probe as Dask data: it travels once to each worker that needs it (from here or
        from another worker), so no worker reads the whole source over the share to probe it again.
        Scattered again when the scheduler forgot it (it restarted)."""
        if self._probed is None or self._probed.status in ("cancelled", "lost", "error"):
            self._probed = client.scatter(info, hash=False)
        return self._probed

    def kept_segments(self, manifest: Manifest, work_dir: Path, *, ffmpeg: FFmpeg) -> list[Segment]:
        """Recorded segments that are still there as recorded, and segments a worker finished but the
        coordinator had not recorded yet (it was killed): nothing already made is made again.

        Each recorded segment was read back whole when it was recorded, so on resume, as on one
        machine, every one's size is checked and only the newest few (by file time) are read back; an
        unrecorded one is always read back."""
        plan = OutputPlan.from_json(manifest.plan)
        recorded = {segment.start: segment for segment in manifest.segments}
        newest = _newest_files(work_dir, manifest.segments, VERIFY_LAST_SEGMENTS)
        kept: list[Segment] = []
        for start, end in segment_ranges(manifest.frames_out, plan.segment_frames):
            segment = recorded.get(start)
            if segment is None or segment.end != end:
                record = _record(work_dir, Segment(file=segment_name(start, plan.segment_ext), start=start,
                                                   end=end, source_end=0))
                if record.get("start") != start or record.get("end") != end:
                    continue
                if _made_from(record, manifest.fingerprint) is not None:
                    continue
                segment = Segment(file=record["file"], start=start, end=end, source_end=int(record["source_end"]),
                                  size=record.get("size"))
                if segment_problem(work_dir / segment.file, segment, read_back=True, ffmpeg=ffmpeg,
                                   count_frames=self._count_frames) is not None:
                    continue
                logger.info("{}: segment {}..{} was made before the restart; keeping it", work_dir.name, start, end)
            else:
                problem = segment_problem(work_dir / segment.file, segment, read_back=segment.file in newest,
                                          ffmpeg=ffmpeg, count_frames=self._count_frames)
                if problem is not None:
                    logger.warning("{}: segment {} {}; making it again", work_dir.name, segment.file, problem)
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
                    task = segment_task(manifest, work_dir=work_dir, source=self.source, span=(start, end),
                                        stop_event=stop.name)
                    future = client.submit(render_segment, task, self._probe_on_farm(client, info),
                                           key=f"{KEY_PREFIX}-{work_dir.name}-{start}-{task.token}",
                                           resources=self.coordinator.resources, pure=False,
                                           **self._placement(client))
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
            segment = Segment(file=record["file"], start=start, end=end, source_end=int(record["source_end"]),
                              size=record.get("size"))
            foreign = _made_from(record, manifest.fingerprint)
            if foreign is not None:
                (work_dir / segment.file).unlink(missing_ok=True)
                (work_dir / f"{segment.file}{RECORD_SUFFIX}").unlink(missing_ok=True)
                self._refuse(client, FarmTaskError(MISMATCH, f"{self.source}: its segment {start}..{end} {foreign}",
                                                   worker=str(record.get("worker", "unknown"))), manifest)
                todo.appendleft(span)
                return
            problem = segment_problem(work_dir / segment.file, segment, read_back=True, ffmpeg=self.ffmpeg,
                                      count_frames=self._count_frames)
            if problem is not None:
                logger.warning("{}: segment {} from {} {}; making it again",
                               work_dir.name, segment.file, record.get("worker"), problem)
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
        if isinstance(error, FarmTaskError) and error.kind == MISMATCH:
            self._refuse(client, error, manifest)
            todo.appendleft(span)
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

    def _refuse(self, client: Client, error: FarmTaskError, manifest: Manifest) -> None:
        """``error.worker`` reads another file than the job's source: none of the job's segments go there
        any more. Unless the source itself changed here (then the job is over: ``SourceChanged``), or no
        other worker is left (the job fails this attempt with the worker's reason)."""
        change = manifest.fingerprint.content_change(Fingerprint.of(self.source))
        if change is not None:
            raise SourceChanged(self.source, f"changed (it {change})")
        self.refused[error.worker] = error
        logger.error("{}: {}; its segments go to other workers", self.source.name, error)
        self._placement(client)

    def _placement(self, client: Client) -> dict[str, Any]:
        """Where the job's segments may go: anywhere, or the fit workers that did not refuse its source;
        the last refusal, raised, when there are none."""
        if not self.refused:
            return {}
        allowed = [address for address in self._fit_addresses(client) if address not in self.refused]
        if not allowed:
            raise from_remote(list(self.refused.values())[-1])
        return {"workers": allowed, "allow_other_workers": False}

    @staticmethod
    def _fit_addresses(client: Client) -> list[str]:
        """The workers that offer a segment slot (one that found it cannot work offers none)."""
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        return [address for address, meta in workers.items() if meta.get("resources", {}).get(SLOT, 0) > 0]

    @classmethod
    def _fit_workers(cls, client: Client) -> bool:
        return bool(cls._fit_addresses(client))

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

