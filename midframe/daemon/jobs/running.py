"""The job the worker runs now: its pause/abort flags, its progress, and passing that progress on
(the store every second, the service manager's status line every 5 s, notifications)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from midframe.daemon.jobs.events import Notifier
from midframe.daemon.jobs.source_identity import GuardedControl
from midframe.daemon.store.records import Job, JobStore
from midframe.engine.job import Progress
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
    notifier: Notifier
    on_status: Callable[[str], None]
    clock: Callable[[], float]
    progress: Progress | None = None
    cancel_requested: bool = False
    stored_at: float = float("-inf")
    status_at: float = float("-inf")

    def on_progress(self, progress: Progress) -> None:
        """Called by the pipeline; reporting trouble is logged, never allowed to fail the job. A job
        database that cannot be written stops the job after this batch: it is left running on record,
        and the worker pauses until it can be written (the job then resumes from its checkpoint)."""
        try:
            self._report(progress)
        except StoreUnwritable as exc:
            logger.warning("job {}: cannot record its progress ({}); stopping it after this batch", self.job.id, exc)
            self.control.abort("the job database cannot be written")
        except Exception:
            logger.exception("job {}: could not report progress", self.job.id)

    def _report(self, progress: Progress) -> None:
        self.progress = progress
        now = self.clock()
        job = self.job
        if now - self.stored_at >= 1.0 or progress.frames_done >= progress.frames_total:
            self.stored_at = now
            self.store_progress()
        if now - self.status_at >= 5.0 or progress.preparing:
            self.status_at = now
            self.on_status(f"working: {job.name} {doing(progress.fraction, progress.eta_s, progress.preparing)}")
        self.notifier.progress(job.id, job.name, progress)

    def store_progress(self) -> None:
        if self.progress is not None:
            self.store.set_progress(self.job.id, frames_done=self.progress.frames_done,
                                    frames_total=self.progress.frames_total)

    def status(self) -> dict[str, Any]:
        """``status --json``'s ``current``."""
        return job_status(self.job, self.progress, elapsed_s=self.clock() - self.started,
                          stalled=self.control.children.stalled())


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
