"""The job table in SQLite (WAL): ``<state_dir>/jobs.sqlite3``, its schema and its migrations. The job
record, its states and the store interface are midframe.daemon.store.records (re-exported here); the table's
in-memory twin is midframe.daemon.store.memory.

A write that fails because of the disk (full, read-only, I/O error) is rolled back whole and raised as
``StoreUnwritable`` (an OSError with its errno and the database's path), which the worker turns into a
pause. The file is watched too (:meth:`SqliteJobStore.keep_file`): deleted or replaced while the
daemon runs, it is written back from the open database, so nothing the daemon knows is lost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from midframe.daemon.store.dbtext import TextSafeConnection
from midframe.daemon.store.records import (  # the record, its states and errors: importable from here as before
    FINAL_STATES,
    STATES,
    Job,
    JobStateError,
    JobStore,
    State,
    check_state,
    same_file,
    wall_time,
)
from midframe.errors import DaemonError, StoreUnwritable
from midframe.fs.publish import move_aside
from midframe.fs.safe_write import make_private

DB_NAME = "jobs.sqlite3"
# SQLite's primary result codes for a write the disk refused, and the errno each stands for.
_DISK_CODES = {13: errno.ENOSPC, 10: errno.EIO, 8: errno.EROFS, 14: errno.EACCES}  # FULL, IOERR, READONLY, CANTOPEN
_COMPANIONS = ("-wal", "-shm")


def _disk_failure(path: Path, exc: sqlite3.Error) -> StoreUnwritable | None:
    code = getattr(exc, "sqlite_errorcode", None)
    number = None if code is None else _DISK_CODES.get(code & 0xFF)
    return None if number is None else StoreUnwritable(path, number, str(exc))


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
    finished_at   REAL,
    not_before    REAL,
    sha256        TEXT,
    settings_key  TEXT,
    profile       TEXT,
    settings      TEXT,
    identity      TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, queue_seq, id);
CREATE INDEX IF NOT EXISTS jobs_path ON jobs (path);
CREATE INDEX IF NOT EXISTS jobs_fingerprint ON jobs (fingerprint);
CREATE TABLE IF NOT EXISTS flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- With a render farm: how many of a job's segments each worker made (added beside jobs, no migration).
CREATE TABLE IF NOT EXISTS job_workers (
    job_id   INTEGER NOT NULL,
    worker   TEXT    NOT NULL,
    segments INTEGER NOT NULL,
    PRIMARY KEY (job_id, worker)
);
-- With engine auto: the engine chosen for each scene (JSON list of {start, end, engine, scores, samples}).
CREATE TABLE IF NOT EXISTS job_engine_scenes (
    job_id INTEGER PRIMARY KEY,
    scenes TEXT    NOT NULL
);
"""
_SCHEMA_VERSION = 4
# Columns added since schema 1, by the version that added them: an older database gains them on opening.
_ADDED_COLUMNS = {2: ("not_before REAL", "sha256 TEXT", "settings_key TEXT"), 3: ("profile TEXT", "settings TEXT"),
                  4: ("identity TEXT",)}
_COLUMNS = tuple(Job.__dataclass_fields__)


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a database of schema ``version`` (0: new) up to ``_SCHEMA_VERSION``, keeping its jobs."""
    present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for added in range(version + 1, _SCHEMA_VERSION + 1):
        for column in _ADDED_COLUMNS.get(added, ()):
            if column.split()[0] not in present:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")


class SqliteJobStore:
    """The job table in ``<state_dir>/jobs.sqlite3``; WAL, every state change one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30,
                             factory=TextSafeConnection)  # names that are not UTF-8 too
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            db.close()
            raise DaemonError(f"{self.path}: written by a newer midframe (schema {version}); upgrade midframe")
        db.executescript(_SCHEMA)
        _migrate(db, version)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        info = os.stat(self.path)
        self._file = (info.st_dev, info.st_ino)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # a COMMIT the disk refused leaves it open
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                failure = _disk_failure(self.path, exc)
                if failure is None:
                    raise
                raise failure from exc

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        return None if row is None else Job(**{key: row[key] for key in _COLUMNS})

    def _one(self, db: sqlite3.Connection, sql: str, *args: Any) -> Job | None:
        return self._job(db.execute(sql, args).fetchone())

    def _read(self, sql: str, *args: Any) -> list[Job]:
        with self._lock:
            return [self._job(row) for row in self._db.execute(sql, args).fetchall()]  # type: ignore[misc]

    def add(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
            now: float | None = None, profile: str | None = None, identity: str | None = None,
            not_before: float | None = None) -> Job:
        with self._transaction() as db:
            return self._insert(db, path, relpath=relpath, size=size, mtime=mtime, fingerprint=fingerprint,
                                stamp=wall_time(now), profile=profile, identity=identity, not_before=not_before)

    def _insert(self, db: sqlite3.Connection, path: Path, *, relpath: str, size: int, mtime: float,
                fingerprint: str, stamp: float, profile: str | None, identity: str | None,
                not_before: float | None) -> Job:
        seq = db.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs").fetchone()[0]
        cursor = db.execute(
            "INSERT INTO jobs (path, name, relpath, size, mtime, fingerprint, state, queue_seq, created_at,"
            " updated_at, profile, identity, not_before) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
            (str(path), Path(path).name, relpath, size, mtime, fingerprint, seq, stamp, stamp, profile, identity,
             not_before),
        )
        return self._one(db, "SELECT * FROM jobs WHERE id = ?", cursor.lastrowid)  # type: ignore[return-value]

    def add_unless_queued(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
                          profile: str | None = None, identity: str | None = None,
                          not_before: float | None = None) -> tuple[Job, bool]:
        """The job queued for ``path`` if there is one, else a new one (one transaction: the watcher and
        the worker may both queue a changed file); and whether it is new."""
        with self._transaction() as db:
            queued = self._one(db, "SELECT * FROM jobs WHERE state = 'queued' AND path = ? ORDER BY id DESC LIMIT 1",
                               str(path))
            if queued is not None:
                return queued, False
            return self._insert(db, path, relpath=relpath, size=size, mtime=mtime, fingerprint=fingerprint,
                                stamp=wall_time(None), profile=profile, identity=identity, not_before=not_before), True

    def find(self, path: Path, *, size: int, mtime: float) -> Job | None:
        found = self._read("SELECT * FROM jobs WHERE path = ? AND size = ? AND mtime = ? ORDER BY id DESC LIMIT 1",
                           str(path), size, mtime)
        return found[0] if found else None

    def get(self, job_id: int) -> Job | None:
        found = self._read("SELECT * FROM jobs WHERE id = ?", job_id)
        return found[0] if found else None

    def jobs(self) -> list[Job]:
        return self._read("SELECT * FROM jobs ORDER BY id")

    def failures_after(self, finished_after: float, *, limit: int) -> tuple[int, list[Job]]:
        # GET /events asks this every second for each tray: it reads the failed rows, never the history
        where = "FROM jobs WHERE state = 'failed' AND COALESCE(finished_at, 0) > ?"
        with self._lock:
            count = self._db.execute(f"SELECT COUNT(*) {where}", (finished_after,)).fetchone()[0]
        latest = self._read(f"SELECT * {where} ORDER BY COALESCE(finished_at, 0) DESC, id DESC LIMIT ?",
                            finished_after, limit)
        return int(count), latest

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        found = dict(rows)
        return {state: found.get(state, 0) for state in STATES}

    def claim(self, *, now: float | None = None, job_id: int | None = None) -> Job | None:
        stamp = wall_time(now)
        with self._transaction() as db:
            if job_id is not None:
                job = self._one(db, "SELECT * FROM jobs WHERE state = 'queued' AND id = ?", job_id)
            else:
                job = self._one(db, "SELECT * FROM jobs WHERE state = 'queued' AND (not_before IS NULL OR"
                                    " not_before <= ?) ORDER BY queue_seq, id LIMIT 1", stamp)
            if job is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?, updated_at = ?"
                       " WHERE id = ?", (stamp, stamp, job.id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job.id)

    def queued_at(self, path: Path) -> Job | None:
        found = self._read("SELECT * FROM jobs WHERE state = 'queued' AND path = ? ORDER BY id DESC LIMIT 1", str(path))
        return found[0] if found else None

    def resettled(self, job_id: int, *, size: int, mtime: float, fingerprint: str,
                  identity: str | None = None) -> Job:
        with self._transaction() as db:
            job = check_state(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"queued"},
                              "settled again")
            same = (job.size, job.mtime, job.fingerprint) == (size, mtime, fingerprint) and same_file(identity,
                                                                                                  job.identity)
            db.execute("UPDATE jobs SET sha256 = ?, identity = ?, size = ?, mtime = ?, fingerprint = ?,"
                       " not_before = NULL WHERE id = ?",
                       (job.sha256 if same else None, identity or (job.identity if same else None), size, mtime,
                        fingerprint, job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def set_content(self, job_id: int, *, sha256: str, settings_key: str, identity: str | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET sha256 = ?, settings_key = ?, identity = COALESCE(?, identity) WHERE id = ?",
                       (sha256, settings_key, identity, job_id))

    def set_settings(self, job_id: int, settings: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET settings = ? WHERE id = ?", (settings, job_id))

    def done_with_content(self, job: Job) -> list[Job]:
        return self._read("SELECT * FROM jobs WHERE state = 'done' AND fingerprint = ? AND sha256 = ? AND settings_key = ?"
                          " AND id != ? AND output IS NOT NULL ORDER BY id", job.fingerprint, job.sha256,
                          job.settings_key, job.id)

    def set_progress(self, job_id: int, *, frames_done: int, frames_total: int,
                     resumed_from: int | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET frames_done = ?, frames_total = ?, resumed_from = COALESCE(?, resumed_from)"
                       " WHERE id = ?", (frames_done, frames_total, resumed_from, job_id))

    def finish(self, job_id: int, state: State, *, now: float | None = None, output: str | None = None,
               error: str | None = None, path: str | None = None, duplicate_of: int | None = None) -> Job:
        if state not in FINAL_STATES:
            raise ValueError(f"{state} is not a final state")
        stamp = wall_time(now)
        with self._transaction() as db:
            check_state(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"running"}, "finished")
            db.execute("UPDATE jobs SET state = ?, output = ?, error = ?, path = COALESCE(?, path), duplicate_of = ?,"
                       " finished_at = ?, updated_at = ? WHERE id = ?",
                       (state, output, error, path, duplicate_of, stamp, stamp, job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def requeue(self, job_id: int, *, error: str | None = None, interrupted: bool = False,
                now: float | None = None, not_before: float | None = None) -> Job:
        with self._transaction() as db:
            check_state(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"running"}, "requeued")
            db.execute("UPDATE jobs SET state = 'queued', error = COALESCE(?, error), attempts = attempts - ?,"
                       " updated_at = ?, not_before = ? WHERE id = ?",
                       (error, 1 if interrupted else 0, wall_time(now), not_before, job_id))
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
            check_state(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"failed", "cancelled"},
                        "retried")
            seq = db.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute("UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, output = NULL, staged = NULL,"
                       " frames_done = 0, not_before = NULL,"
                       " queue_seq = ?, updated_at = ?, finished_at = NULL WHERE id = ?", (seq, wall_time(now), job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def cancel(self, job_id: int, *, now: float | None = None) -> Job:
        stamp = wall_time(now)
        with self._transaction() as db:
            check_state(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"queued"}, "cancelled here")
            db.execute("UPDATE jobs SET state = 'cancelled', error = 'cancelled', finished_at = ?, updated_at = ?"
                       " WHERE id = ?", (stamp, stamp, job_id))
            return self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id)  # type: ignore[return-value]

    def move_to_front(self, job_id: int) -> Job:
        """Give a queued job the lowest place in the queue (the next one claimed)."""
        with self._transaction() as db:
            job = check_state(self._one(db, "SELECT * FROM jobs WHERE id = ?", job_id), job_id, {"queued"},
                         "moved to the front")
            first = db.execute("SELECT MIN(queue_seq) FROM jobs WHERE state = 'queued'").fetchone()[0]
            db.execute("UPDATE jobs SET queue_seq = ? WHERE id = ?", (min(first - 1, job.queue_seq), job_id))
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

    def set_workers(self, job_id: int, workers: Mapping[str, int]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM job_workers WHERE job_id = ?", (job_id,))
            db.executemany("INSERT INTO job_workers (job_id, worker, segments) VALUES (?, ?, ?)",
                           [(job_id, worker, int(count)) for worker, count in workers.items()])

    def workers(self) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = {}
        with self._lock:
            for job_id, worker, count in self._db.execute("SELECT job_id, worker, segments FROM job_workers"):
                found.setdefault(job_id, {})[worker] = count
        return found

    def keep_file(self, *, now: float | None = None) -> str | None:
        """If the database's file was deleted or replaced since it was opened (another inode at its
        path), write the open database back in its place, a replacement moved aside first; what
        happened, in words, or None when the file is still the one opened."""
        with self._lock:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                info = None
            if info is not None and (info.st_dev, info.st_ino) == self._file:
                return None
            happened = "deleted"
            if info is not None:
                aside = move_aside(self.path, "replaced", now=now)
                happened = f"replaced by another file (moved to {aside.name})"
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the whole state dir may be gone
            copy_path = self.path.with_name(f"{self.path.name}.restoring")
            copy_path.unlink(missing_ok=True)
            copy = sqlite3.connect(str(copy_path))
            try:
                self._db.backup(copy)
            finally:
                copy.close()
            self._db.close()
            for suffix in _COMPANIONS:  # the old file's: never to be read with the copy
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            os.replace(copy_path, self.path)
            make_private(self.path, 0o600)
            self._db = self._connect()
            return happened

    def set_scenes(self, job_id: int, scenes: Sequence[Mapping[str, Any]]) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO job_engine_scenes (job_id, scenes) VALUES (?, ?)"
                       " ON CONFLICT (job_id) DO UPDATE SET scenes = excluded.scenes", (job_id, json.dumps(list(scenes))))

    def scenes(self) -> dict[int, list[dict[str, Any]]]:
        with self._lock:
            return {job_id: json.loads(text) for job_id, text in
                    self._db.execute("SELECT job_id, scenes FROM job_engine_scenes")}

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["DB_NAME", "FINAL_STATES", "STATES", "Job", "JobStateError", "JobStore", "SqliteJobStore", "State",
           "same_file"]
