"""The state dir at start-up: private (0700) and writable, and a job database (0600) that opens.

What goes wrong here is said in one line (``DaemonError``), never a traceback: a state dir that
cannot be written, a database that cannot be opened. A database SQLite finds damaged is moved aside
with the time in its name (``jobs.sqlite3.corrupt-20250101-120000``) and a new one started; the
inbox is scanned at every start anyway, so what is still there is queued again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from midframe.daemon.store.sqlite import SqliteJobStore
from midframe.errors import DaemonError
from midframe.fs.publish import move_aside
from midframe.fs.safe_write import make_private

# SQLite's result codes for a file that is damaged or not a database at all.
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_COMPANIONS = ("-wal", "-shm", "-journal")


def prepare_state_dir(state_dir: Path) -> None:
    """Create ``state_dir`` owner-only (0700, tightened if it is not) and check it can be written."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(state_dir, 0o700)
        probe = state_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DaemonError(
            f"cannot use the state dir {state_dir}: {exc.strerror or exc}; make it writable, "
            "or set daemon.state_dir to a folder this user can write"
        ) from None


@dataclass(frozen=True)
class OpenedStore:
    store: SqliteJobStore
    damaged: str | None = None  # what SQLite said about the database that was moved aside
    moved_to: Path | None = None


def _corruption(exc: sqlite3.DatabaseError) -> str | None:
    """SQLite's words when ``exc`` says the file is damaged; None for other trouble (locked, read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return str(exc) if code is not None and code & 0xFF in _CORRUPT_CODES else None


def _damage(path: Path) -> str | None:
    """What is wrong with the database at ``path`` if SQLite calls it corrupt; None if it is sound."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(str(path), timeout=30)
    except sqlite3.DatabaseError as exc:
        return _corruption(exc)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return _corruption(exc)
    finally:
        db.close()
    found = [str(row[0]) for row in rows]
    return None if found == ["ok"] else "; ".join(found[:3])


def open_job_store(path: Path, *, clock: Callable[[], float] = time.time) -> OpenedStore:
    """The job store at ``path``, owner-only; a damaged one moved aside and a new one started."""
    try:
        if path.exists():
            for file in (path, *(path.with_name(path.name + c) for c in _COMPANIONS)):
                if file.exists():
                    make_private(file, 0o600)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite's files take this mode
        damaged = _damage(path)
        # A damaged database's WAL belongs with it, not with the new one.
        moved = move_aside(path, "corrupt", now=clock(), companions=_COMPANIONS) if damaged else None
        if moved is not None:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        return OpenedStore(SqliteJobStore(path), damaged, moved)
    except sqlite3.Error as exc:
        raise DaemonError(f"cannot open the job database {path}: {exc}") from None
    except OSError as exc:
        raise DaemonError(f"cannot open the job database {path}: {exc.strerror or exc}") from None
