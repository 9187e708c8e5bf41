"""The job the worker runs now: its pause/abort flags, its progress, and passing that progress on
(the store every second, the service manager's status line every 5 s, notifications)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from midframe.daemon.identity import GuardedControl
from midframe.daemon.jobs import Job, JobStore
from midframe.daemon.notify import Notifier, format_duration
from midframe.engine.job import Progress


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
        """Called by the pipeline; reporting trouble is logged, never allowed to fail the job."""
        try:
            self._report(progress)
        except Exception:
            logger.exception("job {}: could not report progress", self.job.id)

    def _report(self, progress: Progress) -> None:
        self.progress = progress
        now = self.clock()
        job = self.job
        if now - self.stored_at >= 1.0 or progress.frames_done >= progress.frames_total:
            self.stored_at = now
            self.store_progress()
        if now - self.status_at >= 5.0:
            self.status_at = now
            self.on_status(f"working: {job.name} {progress.fraction:.0%} ETA {format_duration(progress.eta_s)}")
        self.notifier.progress(job.id, job.name, progress)

    def store_progress(self) -> None:
        if self.progress is not None:
            self.store.set_progress(self.job.id, frames_done=self.progress.frames_done,
                                    frames_total=self.progress.frames_total)

    def status(self) -> dict[str, Any]:
        """``status --json``'s ``current``; ``stalled``: a sentence while an ffmpeg child it waits on has
        made no progress for a while (then the rate is not moving and there is no ETA), else None."""
        job, progress = self.job, self.progress
        done = progress.frames_done if progress else job.frames_done
        total = progress.frames_total if progress else job.frames_total
        stalled = self.control.children.stalled()
        eta = progress.eta_s if progress and stalled is None else None
        return {
            "id": job.id,
            "name": job.name,
            "frames_done": done,
            "frames_total": total,
            "progress": round(done / total, 4) if total else 0.0,
            "fps": round(progress.fps, 2) if progress else 0.0,
            "elapsed_s": round(self.clock() - self.started, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "stalled": stalled,
        }
