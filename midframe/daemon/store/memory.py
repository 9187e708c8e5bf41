"""The job store's in-memory twin: for unit tests, and the reference the SQLite store is tested against."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from midframe.daemon.store.records import FINAL_STATES, STATES, Job, State, check_state, same_file, wall_time


class MemoryJobStore:
    """The same store in a dict: for unit tests, and the reference the SQLite store is tested against."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._flags: dict[str, str] = {}
        self._scenes: dict[int, list[dict[str, Any]]] = {}
        self._workers: dict[int, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._next_id = 1
        self._next_seq = 1

    def _seq(self) -> int:
        self._next_seq += 1
        return self._next_seq - 1

    def add(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
            now: float | None = None, profile: str | None = None, identity: str | None = None,
            not_before: float | None = None) -> Job:
        with self._lock:
            return self._insert(path, relpath=relpath, size=size, mtime=mtime, fingerprint=fingerprint,
                                stamp=wall_time(now), profile=profile, identity=identity, not_before=not_before)

    def _insert(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str, stamp: float,
                profile: str | None, identity: str | None, not_before: float | None) -> Job:
        job = Job(id=self._next_id, path=str(path), name=Path(path).name, relpath=relpath, size=size,
                  mtime=mtime, fingerprint=fingerprint, state="queued", queue_seq=self._seq(),
                  created_at=stamp, updated_at=stamp, profile=profile, identity=identity, not_before=not_before)
        self._jobs[job.id] = job
        self._next_id += 1
        return job

    def add_unless_queued(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
                          profile: str | None = None, identity: str | None = None,
                          not_before: float | None = None) -> tuple[Job, bool]:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.state == "queued" and j.path == str(path)]
            if queued:
                return max(queued, key=lambda j: j.id), False
            return self._insert(path, relpath=relpath, size=size, mtime=mtime, fingerprint=fingerprint,
                                stamp=wall_time(None), profile=profile, identity=identity, not_before=not_before), True

    def find(self, path: Path, *, size: int, mtime: float) -> Job | None:
        with self._lock:
            found = [j for j in self._jobs.values()
                     if j.path == str(path) and j.size == size and j.mtime == mtime]
            return max(found, key=lambda j: j.id) if found else None

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id)

    def failures_after(self, finished_after: float, *, limit: int) -> tuple[int, list[Job]]:
        with self._lock:
            found = sorted((job for job in self._jobs.values()
                            if job.state == "failed" and (job.finished_at or 0.0) > finished_after),
                           key=lambda job: (job.finished_at or 0.0, job.id), reverse=True)
        return len(found), found[:limit]

    def counts(self) -> dict[str, int]:
        with self._lock:
            found = Counter(j.state for j in self._jobs.values())
        return {state: found.get(state, 0) for state in STATES}

    def claim(self, *, now: float | None = None, job_id: int | None = None) -> Job | None:
        stamp = wall_time(now)
        with self._lock:
            queued = [j for j in self._jobs.values()
                      if j.state == "queued" and (j.id == job_id if job_id is not None else
                                                  j.not_before is None or j.not_before <= stamp)]
            if not queued:
                return None
            job = min(queued, key=lambda j: (j.queue_seq, j.id))
            job = replace(job, state="running", attempts=job.attempts + 1, started_at=stamp, updated_at=stamp)
            self._jobs[job.id] = job
            return job

    def queued_at(self, path: Path) -> Job | None:
        with self._lock:
            found = [j for j in self._jobs.values() if j.state == "queued" and j.path == str(path)]
            return max(found, key=lambda j: j.id) if found else None

    def resettled(self, job_id: int, *, size: int, mtime: float, fingerprint: str,
                  identity: str | None = None) -> Job:
        with self._lock:
            job = check_state(self._jobs.get(job_id), job_id, {"queued"}, "settled again")
            same = (job.size, job.mtime, job.fingerprint) == (size, mtime, fingerprint) and same_file(identity,
                                                                                                  job.identity)
            job = replace(job, size=size, mtime=mtime, fingerprint=fingerprint, not_before=None,
                          sha256=job.sha256 if same else None,
                          identity=identity or (job.identity if same else None))
            self._jobs[job_id] = job
            return job

    def set_content(self, job_id: int, *, sha256: str, settings_key: str, identity: str | None = None) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, sha256=sha256, settings_key=settings_key,
                                             identity=identity or job.identity)

    def set_settings(self, job_id: int, settings: str) -> None:
        self._update(job_id, settings=settings)

    def done_with_content(self, job: Job) -> list[Job]:
        with self._lock:
            found = [j for j in self._jobs.values() if j.state == "done" and j.id != job.id and j.output
                     and j.sha256 is not None and (j.fingerprint, j.sha256, j.settings_key)
                     == (job.fingerprint, job.sha256, job.settings_key)]
            return sorted(found, key=lambda j: j.id)

    def set_progress(self, job_id: int, *, frames_done: int, frames_total: int,
                     resumed_from: int | None = None) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(
                    job, frames_done=frames_done, frames_total=frames_total,
                    resumed_from=job.resumed_from if resumed_from is None else resumed_from)

    def finish(self, job_id: int, state: State, *, now: float | None = None, output: str | None = None,
               error: str | None = None, path: str | None = None, duplicate_of: int | None = None) -> Job:
        if state not in FINAL_STATES:
            raise ValueError(f"{state} is not a final state")
        stamp = wall_time(now)
        with self._lock:
            job = check_state(self._jobs.get(job_id), job_id, {"running"}, "finished")
            job = replace(job, state=state, output=output, error=error, path=path or job.path,
                          duplicate_of=duplicate_of, finished_at=stamp, updated_at=stamp)
            self._jobs[job_id] = job
            return job

    def requeue(self, job_id: int, *, error: str | None = None, interrupted: bool = False,
                now: float | None = None, not_before: float | None = None) -> Job:
        with self._lock:
            job = check_state(self._jobs.get(job_id), job_id, {"running"}, "requeued")
            job = replace(job, state="queued", error=error if error is not None else job.error,
                          attempts=job.attempts - 1 if interrupted else job.attempts, updated_at=wall_time(now),
                          not_before=not_before)
            self._jobs[job_id] = job
            return job

    def set_path(self, job_id: int, path: str) -> None:
        self._update(job_id, path=path)

    def set_staged(self, job_id: int, staged: str | None) -> None:
        self._update(job_id, staged=staged)

    def _update(self, job_id: int, **changes: Any) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, **changes)

    def recover_running(self, *, now: float | None = None) -> list[Job]:
        with self._lock:
            running = [j.id for j in self._jobs.values() if j.state == "running"]
        return [self.requeue(job_id, interrupted=True, now=now) for job_id in sorted(running)]

    def retry(self, job_id: int, *, now: float | None = None) -> Job:
        with self._lock:
            job = check_state(self._jobs.get(job_id), job_id, {"failed", "cancelled"}, "retried")
            job = replace(job, state="queued", attempts=0, error=None, output=None, staged=None, frames_done=0,
                          queue_seq=self._seq(), updated_at=wall_time(now), finished_at=None, not_before=None)
            self._jobs[job_id] = job
            return job

    def cancel(self, job_id: int, *, now: float | None = None) -> Job:
        stamp = wall_time(now)
        with self._lock:
            job = check_state(self._jobs.get(job_id), job_id, {"queued"}, "cancelled here")
            job = replace(job, state="cancelled", error="cancelled", finished_at=stamp, updated_at=stamp)
            self._jobs[job_id] = job
            return job

    def move_to_front(self, job_id: int) -> Job:
        with self._lock:
            job = check_state(self._jobs.get(job_id), job_id, {"queued"}, "moved to the front")
            first = min(j.queue_seq for j in self._jobs.values() if j.state == "queued")
            job = replace(job, queue_seq=min(first - 1, job.queue_seq))
            self._jobs[job_id] = job
            return job

    def get_flag(self, key: str) -> str | None:
        with self._lock:
            return self._flags.get(key)

    def set_flag(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._flags.pop(key, None)
            else:
                self._flags[key] = value

    def set_workers(self, job_id: int, workers: Mapping[str, int]) -> None:
        with self._lock:
            self._workers[job_id] = dict(workers)

    def workers(self) -> dict[int, dict[str, int]]:
        with self._lock:
            return {job_id: dict(found) for job_id, found in self._workers.items()}

    def set_scenes(self, job_id: int, scenes: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self._scenes[job_id] = [dict(scene) for scene in scenes]

    def scenes(self) -> dict[int, list[dict[str, Any]]]:
        with self._lock:
            return {job_id: [dict(scene) for scene in found] for job_id, found in self._scenes.items()}

    def close(self) -> None:
        pass
