"""The job store: the SQLite table and its in-memory twin must behave the same."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from midframe.daemon.store import JobStateError, MemoryJobStore, SqliteJobStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    made = MemoryJobStore() if request.param == "memory" else SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
    yield made
    made.close()


def add(store, name: str, *, size: int = 10, mtime: float = 1.0, fingerprint: str | None = None, now: float = 0.0):
    return store.add(Path("/inbox") / name, relpath=name, size=size, mtime=mtime,
                     fingerprint=fingerprint or f"fp-{name}", now=now)


def test_claim_is_fifo_and_moves_through_states(store):
    first, second = add(store, "a.mp4"), add(store, "b.mp4")
    assert (first.state, first.attempts, first.name) == ("queued", 0, "a.mp4")
    claimed = store.claim(now=5.0)
    assert (claimed.id, claimed.state, claimed.attempts, claimed.started_at) == (first.id, "running", 1, 5.0)
    assert store.claim().id == second.id
    assert store.claim() is None
    done = store.finish(first.id, "done", output="/out/a.50fps.mp4", path="/done/a.mp4", now=9.0)
    assert (done.state, done.output, done.path, done.finished_at) == ("done", "/out/a.50fps.mp4", "/done/a.mp4", 9.0)
    assert store.counts() == {"queued": 0, "running": 1, "done": 1, "failed": 0, "cancelled": 0}


def test_finish_only_from_running(store):
    job = add(store, "a.mp4")
    with pytest.raises(JobStateError):
        store.finish(job.id, "done")
    with pytest.raises(ValueError):
        store.finish(job.id, "queued")
    with pytest.raises(JobStateError, match="no job 99"):
        store.retry(99)


def test_requeue_keeps_the_place_in_the_queue_and_counts_only_real_attempts(store):
    first, _ = add(store, "a.mp4"), add(store, "b.mp4")
    store.claim()
    again = store.requeue(first.id, error="ffmpeg crashed")
    assert (again.state, again.attempts, again.error) == ("queued", 1, "ffmpeg crashed")
    assert store.claim().id == first.id          # still first in line
    interrupted = store.requeue(first.id, interrupted=True)
    assert interrupted.attempts == 1              # a stop or crash is not a failed attempt


def test_recover_running_after_a_crash(store):
    first, second = add(store, "a.mp4"), add(store, "b.mp4")
    store.claim()
    recovered = store.recover_running()
    assert [job.id for job in recovered] == [first.id]
    assert store.get(first.id).state == "queued" and store.get(first.id).attempts == 0
    assert store.claim().id == first.id and store.get(second.id).state == "queued"


def test_retry_goes_to_the_end_and_cancel_only_queued(store):
    first, second = add(store, "a.mp4"), add(store, "b.mp4")
    store.claim()
    store.finish(first.id, "failed", error="not a video")
    retried = store.retry(first.id)
    assert (retried.state, retried.attempts, retried.error) == ("queued", 0, None)
    assert store.claim().id == second.id and store.claim().id == first.id
    third = add(store, "c.mp4")
    cancelled = store.cancel(third.id)
    assert cancelled.state == "cancelled"
    with pytest.raises(JobStateError):
        store.cancel(first.id)                   # running: the worker cancels it
    with pytest.raises(JobStateError):
        store.retry(second.id)


def test_find_and_duplicates(store):
    job = add(store, "a.mp4", size=7, mtime=3.5, fingerprint="same")
    assert store.find(Path("/inbox/a.mp4"), size=7, mtime=3.5).id == job.id
    assert store.find(Path("/inbox/a.mp4"), size=8, mtime=3.5) is None
    copy = add(store, "copy.mp4", fingerprint="same")
    assert store.done_with_fingerprint("same", exclude_id=copy.id) is None
    store.claim()
    store.finish(job.id, "done", output="/out/a.mp4")
    assert store.done_with_fingerprint("same", exclude_id=copy.id).id == job.id
    assert store.done_with_fingerprint("same", exclude_id=job.id) is None


def test_progress_path_staged_and_flags(store):
    job = add(store, "a.mp4")
    store.set_progress(job.id, frames_done=10, frames_total=40, resumed_from=4)
    store.set_path(job.id, "/failed/a.mp4")
    store.set_staged(job.id, "/out/.midframe-work/job-1-result.mp4")
    got = store.get(job.id)
    assert (got.frames_done, got.frames_total, got.resumed_from, got.path) == (10, 40, 4, "/failed/a.mp4")
    assert got.staged.endswith("job-1-result.mp4")
    assert set(got.to_dict()) >= {"id", "name", "path", "state", "attempts", "error", "output", "frames_done",
                                  "frames_total"}
    assert store.get_flag("paused") is None
    store.set_flag("paused", "user")
    assert store.get_flag("paused") == "user"
    store.set_flag("paused", None)
    assert store.get_flag("paused") is None


def test_sqlite_survives_a_reopen_and_keeps_the_pause(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobStore(path)
    job = add(first, "a.mp4")
    first.claim()
    first.set_flag("paused", "user")
    first.close()
    again = SqliteJobStore(path)
    try:
        assert again.get(job.id).state == "running"
        assert again.get_flag("paused") == "user"
        assert again.recover_running()[0].id == job.id
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        again.close()


def test_sqlite_concurrent_claims_never_hand_out_a_job_twice(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    for index in range(60):
        add(store, f"{index:02d}.mp4")
    taken: list[int] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while (job := store.claim()) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert sorted(taken) == list(range(1, 61))
