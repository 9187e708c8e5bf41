"""The job store: the SQLite table and its in-memory twin must behave the same."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from midframe.daemon.store.memory import MemoryJobStore
from midframe.daemon.store.sqlite import JobStateError, SqliteJobStore


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


def test_find_and_duplicates_need_the_same_content_and_settings(store):
    job = add(store, "a.mp4", size=7, mtime=3.5, fingerprint="same")
    assert store.find(Path("/inbox/a.mp4"), size=7, mtime=3.5).id == job.id
    assert store.find(Path("/inbox/a.mp4"), size=8, mtime=3.5) is None
    copy = add(store, "copy.mp4", fingerprint="same")
    other = add(store, "other.mp4", fingerprint="same")
    store.set_content(job.id, sha256="h1", settings_key="k1")
    store.set_content(copy.id, sha256="h1", settings_key="k1")
    store.set_content(other.id, sha256="h2", settings_key="k1")     # same head and tail, other content
    assert store.done_with_content(store.get(copy.id)) == []
    store.claim()
    store.finish(job.id, "done", output="/out/a.mp4")
    assert [j.id for j in store.done_with_content(store.get(copy.id))] == [job.id]
    assert store.done_with_content(store.get(job.id)) == []
    assert store.done_with_content(store.get(other.id)) == []
    store.set_content(copy.id, sha256="h1", settings_key="k2")      # other settings: not a duplicate
    assert store.done_with_content(store.get(copy.id)) == []


def test_not_before_holds_a_job_back_and_resettling_releases_it(store):
    first, second = add(store, "a.mp4"), add(store, "b.mp4")
    store.claim(now=10.0)
    held = store.requeue(first.id, error="pipe lost", not_before=100.0, now=10.0)
    assert held.not_before == 100.0 and held.attempts == 1
    assert store.claim(now=50.0).id == second.id          # the held one is passed over
    assert store.claim(now=60.0) is None
    assert store.claim(now=100.0).id == first.id           # its time has come; it keeps its place
    store.requeue(first.id, interrupted=True, not_before=1e12)
    assert store.queued_at(Path("/inbox/a.mp4")).id == first.id and store.queued_at(Path("/inbox/x.mp4")) is None
    store.set_content(first.id, sha256="h", settings_key="k")
    same = store.resettled(first.id, size=10, mtime=1.0, fingerprint="fp-a.mp4")
    assert (same.not_before, same.sha256) == (None, "h")
    store.claim(now=200.0)
    store.requeue(first.id, interrupted=True, not_before=1e12)
    grown = store.resettled(first.id, size=20, mtime=2.0, fingerprint="fp-grown")
    assert (grown.size, grown.mtime, grown.fingerprint, grown.not_before, grown.sha256) == (20, 2.0, "fp-grown", None, None)
    with pytest.raises(JobStateError):
        store.resettled(second.id, size=1, mtime=1.0, fingerprint="x")   # running


def test_identity_and_queueing_a_changed_file_once(store):
    job = store.add(Path("/inbox/a.mp4"), relpath="a.mp4", size=10, mtime=1.0, fingerprint="f", identity="1:7:10:1:1")
    assert job.identity == "1:7:10:1:1" and job.not_before is None
    store.set_content(job.id, sha256="h", settings_key="k", identity="1:7:10:1:2")
    assert store.get(job.id).identity == "1:7:10:1:2"
    replaced = store.resettled(job.id, size=10, mtime=1.0, fingerprint="f", identity="1:8:10:1:3")
    assert (replaced.sha256, replaced.identity) == (None, "1:8:10:1:3")       # another file: hashed again
    store.claim(now=1.0)
    queued, new = store.add_unless_queued(Path("/inbox/a.mp4"), relpath="a.mp4", size=12, mtime=2.0,
                                          fingerprint="g", identity="1:9:12:2:2", not_before=50.0)
    assert new and (queued.id, queued.state, queued.not_before, queued.identity) == (2, "queued", 50.0, "1:9:12:2:2")
    again, new = store.add_unless_queued(Path("/inbox/a.mp4"), relpath="a.mp4", size=13, mtime=3.0, fingerprint="h")
    assert not new and again.id == 2 and again.size == 12                   # one job for the current content
    assert [j.id for j in store.jobs()] == [1, 2]


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


SCHEMA_1 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, name TEXT NOT NULL, relpath TEXT NOT NULL,
    size INTEGER NOT NULL, mtime REAL NOT NULL, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    queue_seq INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, output TEXT, staged TEXT,
    duplicate_of INTEGER, frames_done INTEGER NOT NULL DEFAULT 0, frames_total INTEGER NOT NULL DEFAULT 0,
    resumed_from INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    started_at REAL, finished_at REAL
);
CREATE TABLE flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO jobs (path, name, relpath, size, mtime, fingerprint, state, queue_seq, attempts, created_at, updated_at)
    VALUES ('/inbox/old.mp4', 'old.mp4', 'old.mp4', 5, 1.0, 'fp-old', 'queued', 1, 1, 0, 0);
INSERT INTO flags VALUES ('paused', 'user');
PRAGMA user_version = 1;
"""


def test_a_schema_1_database_keeps_its_jobs(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
    store = SqliteJobStore(path)
    try:
        old = store.get(1)
        assert (old.name, old.attempts, old.not_before, old.sha256, old.profile, old.identity) == ("old.mp4", 1, None, None, None, None)
        assert store.get_flag("paused") == "user"
        claimed = store.claim(now=5.0)
        store.requeue(claimed.id, not_before=9.0)
        assert store.claim(now=6.0) is None and store.claim(now=9.0).id == 1
        assert add(store, "new.mp4").id == 2
    finally:
        store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 4
    SqliteJobStore(path).close()                          # opening it again is a no-op


def test_a_write_the_disk_refuses_is_rolled_back_and_said_with_its_errno(tmp_path):
    """SQLite's SQLITE_FULL, made real by a page limit (as a full disk gives it): StoreUnwritable, an
    OSError with ENOSPC and the database's path; nothing half-written; writes work again once there is
    room (issue 19, finding 6)."""
    import errno

    from midframe.errors import StoreUnwritable

    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path)
    try:
        kept = add(store, "a.mp4")
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreUnwritable) as caught:
            for number in range(1000):
                add(store, f"{'x' * 2000}-{number}.mp4")
        assert (caught.value.errno, caught.value.filename, caught.value.path) == (errno.ENOSPC, str(path), path)
        assert isinstance(caught.value, OSError) and not store._db.in_transaction
        count = len(store.jobs())
        store._db.execute(f"PRAGMA max_page_count = {pages * 100}")
        assert add(store, "b.mp4").id > kept.id and len(store.jobs()) == count + 1
    finally:
        store.close()


def test_a_deleted_or_replaced_database_file_is_written_back_from_the_open_one(tmp_path):
    path = tmp_path / "state" / "jobs.sqlite3"
    store = SqliteJobStore(path)
    try:
        job = add(store, "a.mp4")
        assert store.keep_file() is None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert store.keep_file() == "deleted" and store.keep_file() is None
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT name FROM jobs").fetchall() == [("a.mp4",)]
        path.unlink()
        path.write_bytes(b"someone else's file")
        assert store.keep_file(now=0).startswith("replaced by another file (moved to jobs.sqlite3.replaced-")
        [aside] = path.parent.glob("jobs.sqlite3.replaced-*")
        assert aside.read_bytes() == b"someone else's file"
        assert store.claim().id == job.id and store.get(job.id).state == "running"
    finally:
        store.close()


def test_failures_after_counts_and_names_the_latest(store):
    for index, (name, finished) in enumerate([("a.mp4", 10.0), ("b.mp4", 30.0), ("c.mp4", 20.0), ("d.mp4", 40.0)]):
        job = add(store, name)
        store.claim(now=1.0 + index)
        store.finish(job.id, "failed" if name != "d.mp4" else "done", now=finished, error="x")
    count, latest = store.failures_after(15.0, limit=1)
    assert (count, [job.name for job in latest]) == (2, ["b.mp4"])       # b at 30 and c at 20; d is done
    count, latest = store.failures_after(0.0, limit=5)
    assert (count, [job.name for job in latest]) == (3, ["b.mp4", "c.mp4", "a.mp4"])
    assert store.failures_after(30.0, limit=5) == (0, [])
