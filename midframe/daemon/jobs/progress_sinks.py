"""Subscribers of the job events (:class:`midframe.daemon.jobs.events.JobEvents`) that pass a running
job's progress on: to the job's record in the store (every second, and its last report), and to the
service manager's status line (every 5 s, and at once while the job prepares something).

Both keep their pace per job, from that job's ``started``: a job resumed later begins afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from midframe.daemon.jobs.events import JobEvent
from midframe.daemon.jobs.running import doing
from midframe.daemon.store.records import JobStore

STORE_EVERY_S = 1.0
STATUS_EVERY_S = 5.0


class ProgressRecord:
    """Writes a job's frames done and total to the store. ``StoreUnwritable`` goes back to the
    emitter: the job cannot go on without a record of where it is."""

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.monotonic,
                 every_s: float = STORE_EVERY_S) -> None:
        self._store = store
        self._clock = clock
        self._every_s = every_s
        self._at: dict[int, float] = {}

    def __call__(self, event: JobEvent) -> None:
        if event.job_id is None:
            return
        if event.kind in ("started", "done", "failed"):
            self._at.pop(event.job_id, None)
            return
        progress = event.progress
        if event.kind != "progress" or progress is None:
            return
        now = self._clock()
        if now - self._at.get(event.job_id, float("-inf")) >= self._every_s or progress.frames_done >= progress.frames_total:
            self._at[event.job_id] = now
            self._store.set_progress(event.job_id, frames_done=progress.frames_done,
                                     frames_total=progress.frames_total)


class StatusLine:
    """``working: a.mp4 42% ETA 3 min`` for the service manager (``LifecycleListener.status``)."""

    def __init__(self, status: Callable[[str], None], *, clock: Callable[[], float] = time.monotonic,
                 every_s: float = STATUS_EVERY_S) -> None:
        self._status = status
        self._clock = clock
        self._every_s = every_s
        self._at: dict[int, float] = {}

    def __call__(self, event: JobEvent) -> None:
        if event.job_id is None:
            return
        if event.kind in ("started", "done", "failed"):
            self._at.pop(event.job_id, None)
            return
        progress = event.progress
        if event.kind != "progress" or progress is None:
            return
        now = self._clock()
        if now - self._at.get(event.job_id, float("-inf")) >= self._every_s or progress.preparing:
            self._at[event.job_id] = now
            self._status(f"working: {event.name} {doing(progress.fraction, progress.eta_s, progress.preparing)}")
