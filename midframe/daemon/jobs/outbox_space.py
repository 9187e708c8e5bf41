"""Room on the outbox's disk, by the space estimate: a job that does not fit waits, the others go on.

Before a job starts, its output is estimated (``naming.estimate_output_bytes``, less what a resumed
job has made already) and ``daemon.min_free_mb`` added. A job that does not fit goes back to the
queue for ``ROOM_RECHECK_S`` (``not_before``) with the reason as its error, and the worker takes the
next one. Only when nothing else can run does the daemon say it is paused, naming the jobs that wait
and what they need (``paused_reason``). A disk that actually fills up mid-job is the outcome table's
(a pause until there is room again); this is only the estimate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from midframe.config import Config
from midframe.daemon.jobs.events import JobEvents
from midframe.daemon.jobs.naming import estimate_output_bytes
from midframe.daemon.store.records import Job, JobStore

ROOM_RECHECK_S = 15.0


class Room:
    def __init__(self, store: JobStore, outbox: Path, *, free_bytes: Callable[[Path], int], events: JobEvents,
                 wall_clock: Callable[[], float]) -> None:
        self._store = store
        self._outbox = outbox
        self._free_bytes = free_bytes
        self._events = events
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._waiting: dict[int, str] = {}   # job id -> why it waits
        self._starved = False                # the last claim found nothing that could run

    def needed_bytes(self, job: Job, config: Config) -> int:
        done = job.frames_done / job.frames_total if job.frames_total else 0.0
        return (estimate_output_bytes(job.size, config.engine, config.output, done_fraction=done)
                + config.daemon.min_free_mb * (1 << 20))

    def shortage(self, job: Job, config: Config) -> str:
        """Empty when the outbox's disk has room for the job, else what is free and what is needed."""
        needed = self.needed_bytes(job, config)
        free = self._free_bytes(self._outbox)
        if free >= needed:
            return ""
        return (f"outbox ({self._outbox}): {free >> 20} MiB free, about {-(-needed >> 20)} MiB needed for "
                f"{job.name}; free some space there (midframe resumes by itself)")

    def waits(self, job: Job, config: Config) -> bool:
        """Whether ``job`` (claimed) has to wait for room; if so it is back in the queue for a while."""
        shortage = self.shortage(job, config)
        with self._lock:
            if not shortage:
                self._waiting.pop(job.id, None)
                return False
            new = job.id not in self._waiting
            self._waiting[job.id] = shortage
        self._store.requeue(job.id, interrupted=True, error=shortage, not_before=self._wall() + ROOM_RECHECK_S)
        if new:
            logger.warning("job {} waits for room: {}", job.id, shortage)
            self._events.warning(f"{job.name} waits for room in the outbox")
        return True

    def claimed(self, job: Job | None) -> None:
        """What the worker's last claim found (None: nothing that could run now)."""
        with self._lock:
            self._starved = job is None

    @property
    def reason(self) -> str | None:
        """Why nothing runs, when only jobs waiting for room are left; else None."""
        with self._lock:
            if not self._starved or not self._waiting:
                return None
            waiting = dict(self._waiting)
        reasons, ended = [], []
        for job_id, why in waiting.items():
            job = self._store.get(job_id)
            if job is None or job.state not in ("queued", "running"):
                ended.append(job_id)  # cancelled, or done after all
            elif job.state == "queued":
                reasons.append(why)
        with self._lock:
            for job_id in ended:
                self._waiting.pop(job_id, None)
        return "; and ".join(reasons) or None
