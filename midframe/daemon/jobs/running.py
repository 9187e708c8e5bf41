"""The jobs under way: each one's pause/abort flags and its progress, emitted as job events (their
subscribers put it on record, on the status line and in the news: :mod:`midframe.daemon.jobs.progress_sinks`),
and :class:`UnderWay`, the registry the worker and the flow share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from midframe.daemon.jobs.events import JobEvents
from midframe.daemon.jobs.source_identity import GuardedControl
from midframe.daemon.store.records import Job, JobStore
from midframe.engine import Progress
from midframe.errors import StoreUnwritable
from midframe.sentences import format_duration

# Before the first frame count: the file is probed and the output tried (one trial mux for all its streams).
PLANNING = "preparing the output (reading the file, trying the settings)"


def doing(fraction: float, eta_s: float | None, preparing: str | None) -> str:
    """``40% ETA 3 min``, or what the job is doing while it makes no frames (``preparing RIFE for
    1920x1080 (once per size, about 30 s)``), for the one-line statuses."""
    return preparing if preparing else f"{fraction:.0%} ETA {format_duration(eta_s)}"


@dataclass
class Running:
    job: Job
    control: GuardedControl
    started: float
    store: JobStore
    events: JobEvents
    clock: Callable[[], float]
    progress: Progress | None = None
    cancel_requested: bool = False

    def on_progress(self, progress: Progress) -> None:
        """Called by the pipeline; reporting trouble is logged, never allowed to fail the job. A job
        database that cannot be written stops the job after this batch: it is left running on record,
        and the worker pauses until it can be written (the job then resumes from its checkpoint)."""
        try:
            self.progress = progress
            self.events.progress(self.job.id, self.job.name, progress)
        except StoreUnwritable as exc:
            logger.warning("job {}: cannot record its progress ({}); stopping it after this batch", self.job.id, exc)
            self.control.abort("the job database cannot be written")
        except Exception:
            logger.exception("job {}: could not report progress", self.job.id)

    def store_progress(self) -> None:
        """The last progress on record now (a job held or interrupted), whatever the pace."""
        if self.progress is not None:
            self.store.set_progress(self.job.id, frames_done=self.progress.frames_done,
                                    frames_total=self.progress.frames_total)

    def status(self) -> dict[str, Any]:
        """``status --json``'s ``current``."""
        return job_status(self.job, self.progress, elapsed_s=self.clock() - self.started,
                          stalled=self.control.children.stalled())


class UnderWay:
    """The jobs whose conversion is under way, shared by the worker (stop, pause, cancel, status) and
    the flow (a conversion begins and ends). A job that begins after a stop was asked for, or while
    ``paused()``, holds at once: the check and the registration are one step, so no request slips
    between them."""

    def __init__(self, *, paused: Callable[[], bool] = lambda: False) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._stop = threading.Event()
        self._paused = paused

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop every job after its current batch, and any that begins from now on."""
        with self._lock:
            self._stop.set()
            for running in self._running.values():
                running.control.abort("stopped")

    def begin(self, running: Running) -> None:
        with self._lock:
            self._running[running.job.id] = running
            if self._stop.is_set():
                running.control.abort("stopped")
            if self._paused():
                running.control.pause()

    def end(self, job_id: int) -> None:
        with self._lock:
            self._running.pop(job_id, None)

    def hold(self) -> list[Running]:
        """Hold every job between batches; the jobs held."""
        with self._lock:
            held = list(self._running.values())
            for running in held:
                running.control.pause()
        return held

    def release(self) -> None:
        with self._lock:
            for running in self._running.values():
                running.control.resume()

    def cancel(self, job_id: int) -> Job | None:
        """Abort the job if it is under way (its flow records it cancelled); None if it is not."""
        with self._lock:
            running = self._running.get(job_id)
            if running is None:
                return None
            running.cancel_requested = True
            running.control.abort("cancelled")
            return running.job

    def first(self) -> Running | None:
        """The job started first, when several run."""
        with self._lock:
            return min(self._running.values(), key=lambda item: item.started, default=None)


def job_status(job: Job, progress: Progress | None = None, *, elapsed_s: float = 0.0,
               stalled: str | None = None) -> dict[str, Any]:
    """``status --json``'s ``current`` for ``job``: its live ``progress``, else what its record says
    (a job held while the job database cannot be written). ``stalled``: a sentence while an ffmpeg
    child it waits on has made no progress for a while (then the rate is not moving and there is no ETA)."""
    done = progress.frames_done if progress else job.frames_done
    total = progress.frames_total if progress else job.frames_total
    eta = progress.eta_s if progress and stalled is None else None
    return {
        "id": job.id,
        "name": job.name,
        "frames_done": done,
        "frames_total": total,
        "progress": round(done / total, 4) if total else 0.0,
        "fps": round(progress.fps, 2) if progress else 0.0,
        "elapsed_s": round(elapsed_s, 1),
        "eta_s": None if eta is None else round(eta, 1),
        # added to the contract's fields: one-time work under way (a model prepared for this size)
        "preparing": progress.preparing if progress else None if total else PLANNING,
        "stalled": stalled,
    }
