"""The job record and what every job store promises: the ``Job`` row, its states, the ``JobStore``
interface, and the checks on a change of state that the SQLite table (midframe.daemon.store.sqlite) and its
in-memory twin (midframe.daemon.store.memory) share.

A job is never deleted when taken (unlike huey's queue): ``claim`` moves it from ``queued`` to
``running``, and only the worker's outcome moves it on, so a crash loses nothing.

::

    queued ──claim──▶ running ──finish──▶ done | failed | cancelled
      ▲                  │                       │
      └──requeue─────────┘ (retry, stop, crash)  └──retry──▶ queued

A requeued job may carry ``not_before`` (a transient failure's backoff, a source waiting to settle
again): ``claim`` passes it over until then.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from midframe.errors import JobStateError

State = Literal["queued", "running", "done", "failed", "cancelled"]
STATES: tuple[State, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


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
    not_before: float | None = None   # a queued job is not claimed before this time (backoff, settling)
    sha256: str | None = None         # of the whole source, once read
    settings_key: str | None = None   # of the engine and output settings it was converted with
    profile: str | None = None        # the profile of the inbox folder it arrived in (None: the inbox)
    settings: str | None = None       # JSON: the engine and output settings its last start ran with
    identity: str | None = None       # fs.identity.Identity of the source as it settled, then as it was hashed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = json.loads(self.settings) if self.settings else None
        return data


class JobStore(Protocol):
    """What the watcher, worker and control API need from the job table. Thread-safe."""

    def add(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
            now: float | None = None, profile: str | None = None, identity: str | None = None,
            not_before: float | None = None) -> Job: ...
    def add_unless_queued(self, path: Path, *, relpath: str, size: int, mtime: float, fingerprint: str,
                          profile: str | None = None, identity: str | None = None,
                          not_before: float | None = None) -> tuple[Job, bool]: ...
    def find(self, path: Path, *, size: int, mtime: float) -> Job | None: ...
    def get(self, job_id: int) -> Job | None: ...
    def jobs(self) -> list[Job]: ...
    def counts(self) -> dict[str, int]: ...
    def failures_after(self, finished_after: float, *, limit: int) -> tuple[int, list[Job]]:
        """How many failed jobs finished after ``finished_after``, and the latest ``limit`` of them."""
        ...
    def claim(self, *, now: float | None = None, job_id: int | None = None) -> Job | None:
        """The next queued job (``not_before`` passed), or queued job ``job_id`` whatever its ``not_before``
        (an early verdict), now running; None when there is none."""
        ...
    def queued_at(self, path: Path) -> Job | None: ...
    def resettled(self, job_id: int, *, size: int, mtime: float, fingerprint: str,
                  identity: str | None = None) -> Job: ...
    def set_content(self, job_id: int, *, sha256: str, settings_key: str, identity: str | None = None) -> None: ...
    def set_settings(self, job_id: int, settings: str) -> None: ...
    def done_with_content(self, job: Job) -> list[Job]: ...
    def set_progress(self, job_id: int, *, frames_done: int, frames_total: int,
                     resumed_from: int | None = None) -> None: ...
    def finish(self, job_id: int, state: State, *, now: float | None = None, output: str | None = None,
               error: str | None = None, path: str | None = None, duplicate_of: int | None = None) -> Job: ...
    def requeue(self, job_id: int, *, error: str | None = None, interrupted: bool = False,
                now: float | None = None, not_before: float | None = None) -> Job: ...
    def set_path(self, job_id: int, path: str) -> None: ...
    def set_staged(self, job_id: int, staged: str | None) -> None: ...
    def recover_running(self, *, now: float | None = None) -> list[Job]: ...
    def retry(self, job_id: int, *, now: float | None = None) -> Job: ...
    def cancel(self, job_id: int, *, now: float | None = None) -> Job: ...
    def move_to_front(self, job_id: int) -> Job: ...
    def get_flag(self, key: str) -> str | None: ...
    def set_flag(self, key: str, value: str | None) -> None: ...
    def set_workers(self, job_id: int, workers: Mapping[str, int]) -> None: ...
    def workers(self) -> dict[int, dict[str, int]]: ...
    def set_scenes(self, job_id: int, scenes: Sequence[Mapping[str, Any]]) -> None: ...
    def scenes(self) -> dict[int, list[dict[str, Any]]]: ...
    def close(self) -> None: ...


def same_file(identity: str | None, other: str | None) -> bool:
    """Whether two ``fs.identity.Identity`` texts (``device:inode:...``) name the same file; True if either is unknown."""
    return identity is None or other is None or identity.split(":")[:2] == other.split(":")[:2]


def wall_time(now: float | None) -> float:
    """``now``, or the wall-clock time when it is None (what every store stamps a change with)."""
    return time.time() if now is None else now


def check_state(job: Job | None, job_id: int, allowed: frozenset[str] | set[str], action: str) -> Job:
    """``job`` if it exists and is in an ``allowed`` state; else JobStateError says why ``action`` cannot be."""
    if job is None:
        raise JobStateError(f"no job {job_id}", missing=True)
    if job.state not in allowed:
        raise JobStateError(f"job {job_id} is {job.state}; only a {' or '.join(sorted(allowed))} job can be {action}")
    return job
