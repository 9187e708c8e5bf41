"""The job table: one row per arrived file, moving through states; SQLite (WAL) and an in-memory twin.

A job is never deleted when taken (unlike huey's queue): ``claim`` moves it from ``queued`` to
``running``, and only the worker's outcome moves it on, so a crash loses nothing.

::

    queued ──claim──▶ running ──finish──▶ done | failed | cancelled
      ▲                  │                       │
      └──requeue─────────┘ (retry, stop, crash)  └──retry──▶ queued
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from midframe.errors import DaemonError

State = Literal["queued", "running", "done", "failed", "cancelled"]
STATES: tuple[State, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})
DB_NAME = "jobs.sqlite3"


class JobStateError(ValueError):
    """The job is not in a state that allows the requested change (e.g. retry of a done job)."""


@dataclass(frozen=True)
class Job:
    id: int
    path: str            # where the source file is now (inbox, then done_dir or failed_dir)
    name: str            # its file name when it arrived
    relpath: str         # its path relative to the inbox when it arrived (sub-folders kept in outputs)
    size: int
    mtime: float
    fingerprint: str
    state: State
    queue_seq: int
    attempts: int = 0
    error: str | None = None
    output: str | None = None
    staged: str | None = None    # the finished conversion waiting in the outbox's work folder
    duplicate_of: int | None = None
    frames_done: int = 0
    frames_total: int = 0
    resumed_from: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobStore(Protocol):
    """What the watcher, worker and control API need from the job table. Thread-safe."""

    def add(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
            now: float | None = None) -> Job: ...
    def find(self, path: Path, *, size: int, mtime: float) -> Job | None: ...
    def get(self, job_id: int) -> Job | None: ...
    def jobs(self) -> list[Job]: ...
    def counts(self) -> dict[str, int]: ...
    def claim(self, *, now: float | None = None) -> Job | None: ...
    def done_with_fingerprint(self, fingerprint: str, *, exclude_id: int) -> Job | None: ...
    def set_progress(self, job_id: int, *, frames_done: int, frames_total: int,
                     resumed_from: int | None = None) -> None: ...
    def finish(self, job_id: int, state: State, *, now: float | None = None, output: str | None = None,
               error: str | None = None, path: str | None = None, duplicate_of: int | None = None) -> Job: ...
    def requeue(self, job_id: int, *, error: str | None = None, interrupted: bool = False,
                now: float | None = None) -> Job: ...
    def set_path(self, job_id: int, path: str) -> None: ...
    def set_staged(self, job_id: int, staged: str | None) -> None: ...
    def recover_running(self, *, now: float | None = None) -> list[Job]: ...
    def retry(self, job_id: int, *, now: float | None = None) -> Job: ...
    def cancel(self, job_id: int, *, now: float | None = None) -> Job: ...
    def get_flag(self, key: str) -> str | None: ...
    def set_flag(self, key: str, value: str | None) -> None: ...
    def close(self) -> None: ...


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _check(job: Job | None, job_id: int, allowed: frozenset[str] | set[str], action: str) -> Job:
    if job is None:
        raise JobStateError(f"no job {job_id}")
    if job.state not in allowed:
        raise JobStateError(f"job {job_id} is {job.state}; only a {' or '.join(sorted(allowed))} job can be {action}")
    return job


class MemoryJobStore:
    """The same store in a dict: for unit tests, and the reference the SQLite store is tested against."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._flags: dict[str, str] = {}
        self._lock = threading.Lock()
        self._next_id = 1
        self._next_seq = 1

    def _seq(self) -> int:
        self._next_seq += 1
        return self._next_seq - 1

    def add(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
            now: float | None = None) -> Job:
        stamp = _now(now)
        with self._lock:
            job = Job(id=self._next_id, path=str(path), name=Path(path).name, relpath=relpath, size=size,
                      mtime=mtime, fingerprint=fingerprint, state="queued", queue_seq=self._seq(),
                      created_at=stamp, updated_at=stamp)
            self._jobs[job.id] = job
            self._next_id += 1
            return job

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

    def counts(self) -> dict[str, int]:
        with self._lock:
            found = Counter(j.state for j in self._jobs.values())
        return {state: found.get(state, 0) for state in STATES}

    def claim(self, *, now: float | None = None) -> Job | None:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.state == "queued"]
            if not queued:
                return None
            job = min(queued, key=lambda j: (j.queue_seq, j.id))
            stamp = _now(now)
            job = replace(job, state="running", attempts=job.attempts + 1, started_at=stamp, updated_at=stamp)
            self._jobs[job.id] = job
            return job

    def done_with_fingerprint(self, fingerprint: str, *, exclude_id: int) -> Job | None:
        with self._lock:
            found = [j for j in self._jobs.values()
                     if j.state == "done" and j.fingerprint == fingerprint and j.id != exclude_id and j.output]
            return min(found, key=lambda j: j.id) if found else None

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
        stamp = _now(now)
        with self._lock:
            job = _check(self._jobs.get(job_id), job_id, {"running"}, "finished")
            job = replace(job, state=state, output=output, error=error, path=path or job.path,
                          duplicate_of=duplicate_of, finished_at=stamp, updated_at=stamp)
            self._jobs[job_id] = job
            return job

    def requeue(self, job_id: int, *, error: str | None = None, interrupted: bool = False,
                now: float | None = None) -> Job:
        with self._lock:
            job = _check(self._jobs.get(job_id), job_id, {"running"}, "requeued")
            job = replace(job, state="queued", error=error if error is not None else job.error,
                          attempts=job.attempts - 1 if interrupted else job.attempts, updated_at=_now(now))
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
            job = _check(self._jobs.get(job_id), job_id, {"failed", "cancelled"}, "retried")
            job = replace(job, state="queued", attempts=0, error=None, output=None, staged=None, frames_done=0,
                          queue_seq=self._seq(), updated_at=_now(now), finished_at=None)
            self._jobs[job_id] = job
            return job

    def cancel(self, job_id: int, *, now: float | None = None) -> Job:
        stamp = _now(now)
        with self._lock:
            job = _check(self._jobs.get(job_id), job_id, {"queued"}, "cancelled here")
            job = replace(job, state="cancelled", error="cancelled", finished_at=stamp, updated_at=stamp)
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

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    path          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    relpath       TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    mtime         REAL    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    queue_seq     INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    output        TEXT,
    staged        TEXT,
    duplicate_of  INTEGER,
    frames_done   INTEGER NOT NULL DEFAULT 0,
    frames_total  INTEGER NOT NULL DEFAULT 0,
    resumed_from  INTEGER NOT NULL DEFAULT 0,
    created_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL,
    started_at    REAL,
    finished_at   REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, queue_seq, id);
CREATE INDEX IF NOT EXISTS jobs_path ON jobs (path);
CREATE INDEX IF NOT EXISTS jobs_fingerprint ON jobs (fingerprint);
CREATE TABLE IF NOT EXISTS flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_SCHEMA_VERSION = 1
_COLUMNS = tuple(Job.__dataclass_fields__)


class SqliteJobStore:
    """The job table in ``<state_dir>/jobs.sqlite3``; WAL, every state change one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise DaemonError(f"{self.path}: written by a newer midframe (schema {version}); upgrade midframe")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        return None if row is None else Job(**{key: row[key] for key in _COLUMNS})

    def _one(self, db: sqlite3.Connection, sql: str, *args: Any) -> Job | None:
        return self._job(db.execute(sql, args).fetchone())

    def _read(self, sql: str, *args: Any) -> list[Job]:
        with self._lock:
            return [self._job(row) for row in self._db.execute(sql, args).fetchall()]  # type: ignore[misc]

    def add(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
            now: float | None = None) -> Job:
        stamp = _now(now)
        with self._transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs").fetchone()[0]
            cursor = db.execute(
                "INSERT INTO jobs (path, name, relpath, size, mtime, fingerprint, state, queue_seq, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (str(path), Path(path).name, relpath, size, mtime, fingerprint, seq, stamp, stamp),
            )
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", cursor.lastrowid)  # type: ignore[return-value]

    def find(self, path: Path, *, size: int, mtime: float) -> Job | None:
        found = self._read("SELECT * FROM jobs WHERE path = ? AND size = ? AND mtime = ? ORDER BY id DESC LIMIT 1",
                           str(path), size, mtime)
        return found[0] if found else None

    def get(self, job_id: int) -> Job | None:
        found = self._read("SELECT * FROM jobs WHERE id = ?", job_id)
        return found[0] if found else None

    def jobs(self) -> list[Job]:
        return self._read("SELECT * FROM jobs ORDER BY id")

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        found = dict(rows)
        return {state: found.get(state, 0) for state in STATES}

    def claim(self, *, now: float | None = None) -> Job | None:
        stamp = _now(now)
        with self._transaction() as db:
            job = self._one(db, "SELECT * FROM jobs WHERE state = 'queued' ORDER BY queue_seq, id LIMIT 1")
            if job is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?, updated_at = ?"
                       " WHERE id = ?", (stamp, stamp, job.id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job.id)

    def done_with_fingerprint(self, fingerprint: str, *, exclude_id: int) -> Job | None:
        found = self._read("SELECT * FROM jobs WHERE state = 'done' AND fingerprint = ? AND id != ?"
                           " AND output IS NOT NULL ORDER BY id LIMIT 1", fingerprint, exclude_id)
        return found[0] if found else None

    def set_progress(self, job_id: int, *, frames_done: int, frames_total: int,
                     resumed_from: int | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET frames_done = ?, frames_total = ?, resumed_from = COALESCE(?, resumed_from)"
                       " WHERE id = ?", (frames_done, frames_total, resumed_from, job_id))

    def finish(self, job_id: int, state: State, *, now: float | None = None, output: str | None = None,
               error: str | None = None, path: str | None = None, duplicate_of: int | None = None) -> Job:
        if state not in FINAL_STATES:
            raise ValueError(f"{state} is not a final state")
        stamp = _now(now)
        with self._transaction() as db:
            _check(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"running"}, "finished")
            db.execute("UPDATE jobs SET state = ?, output = ?, error = ?, path = COALESCE(?, path), duplicate_of = ?,"
                       " finished_at = ?, updated_at = ? WHERE id = ?",
                       (state, output, error, path, duplicate_of, stamp, stamp, job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def requeue(self, job_id: int, *, error: str | None = None, interrupted: bool = False,
                now: float | None = None) -> Job:
        with self._transaction() as db:
            _check(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"running"}, "requeued")
            db.execute("UPDATE jobs SET state = 'queued', error = COALESCE(?, error), attempts = attempts - ?,"
                       " updated_at = ? WHERE id = ?", (error, 1 if interrupted else 0, _now(now), job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def set_path(self, job_id: int, path: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET path = ? WHERE id = ?", (path, job_id))

    def set_staged(self, job_id: int, staged: str | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET staged = ? WHERE id = ?", (staged, job_id))

    def recover_running(self, *, now: float | None = None) -> list[Job]:
        running = self._read("SELECT * FROM jobs WHERE state = 'running' ORDER BY id")
        return [self.requeue(job.id, interrupted=True, now=now) for job in running]

    def retry(self, job_id: int, *, now: float | None = None) -> Job:
        with self._transaction() as db:
            _check(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"failed", "cancelled"}, "retried")
            seq = db.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute("UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, output = NULL, staged = NULL,"
                       " frames_done = 0,"
                       " queue_seq = ?, updated_at = ?, finished_at = NULL WHERE id = ?", (seq, _now(now), job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def cancel(self, job_id: int, *, now: float | None = None) -> Job:
        stamp = _now(now)
        with self._transaction() as db:
            _check(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"queued"}, "cancelled here")
            db.execute("UPDATE jobs SET state = 'cancelled', error = 'cancelled', finished_at = ?, updated_at = ?"
                       " WHERE id = ?", (stamp, stamp, job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def get_flag(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM flags WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_flag(self, key: str, value: str | None) -> None:
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM flags WHERE key = ?", (key,))
            else:
                db.execute("INSERT INTO flags (key, value) VALUES (?, ?)"
                           " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
