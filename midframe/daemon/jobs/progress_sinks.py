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
from midframe.engine import Progress

STORE_EVERY_S = 1.0
STATUS_EVERY_S = 5.0


class _Throttled:
    """A subscriber that passes each job's progress on at most every ``every_s`` (and at once where
    ``_urgent`` says so), starting its count afresh at each job's start and end."""

    def __init__(self, *, clock: Callable[[], float], every_s: float) -> None:
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
        if now - self._at.get(event.job_id, float("-inf")) >= self._every_s or self._urgent(progress):
            self._at[event.job_id] = now
            self._pass_on(event, progress)

    def _urgent(self, progress: Progress) -> bool:
        return False

    def _pass_on(self, event: JobEvent, progress: Progress) -> None:
        raise NotImplementedError


class ProgressRecord(_Throttled):
    """Writes a job's frames done and total to the store (its last report always). ``StoreUnwritable``
    goes back to the emitter: the job cannot go on without a record of where it is."""

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.monotonic,
                 every_s: float = STORE_EVERY_S) -> None:
        super().__init__(clock=clock, every_s=every_s)
        self._store = store

    def _urgent(self, progress: Progress) -> bool:
        return progress.frames_done >= progress.frames_total

    def _pass_on(self, event: JobEvent, progress: Progress) -> None:
        assert event.job_id is not None
        self._store.set_progress(event.job_id, frames_done=progress.frames_done, frames_total=progress.frames_total)


class StatusLine(_Throttled):
    """``working: a.mp4 42% ETA 3 min`` for the service manager (``LifecycleListener.status``), at once
    while the job prepares something."""

    def __init__(self, status: Callable[[str], None], *, clock: Callable[[], float] = time.monotonic,
                 every_s: float = STATUS_EVERY_S) -> None:
        super().__init__(clock=clock, every_s=every_s)
        self._status = status

    def _urgent(self, progress: Progress) -> bool:
        return bool(progress.preparing)

    def _pass_on(self, event: JobEvent, progress: Progress) -> None:
        self._status(f"working: {event.name} {doing(progress.fraction, progress.eta_s, progress.preparing)}")
