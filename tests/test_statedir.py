"""The state dir and the job database at start-up, on real folders and real SQLite files: modes,
damaged databases moved aside, one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from midframe.daemon.statedir import open_job_store, prepare_state_dir
from midframe.daemon.store.sqlite import SqliteJobStore
from midframe.errors import DaemonError

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
NOON = 1_767_268_800.0  # a fixed clock for the moved-aside name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def test_the_state_dir_is_made_private(tmp_path):
    fresh = tmp_path / "a" / "state"
    prepare_state_dir(fresh)
    assert mode(fresh) == 0o700 and list(fresh.iterdir()) == []
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    prepare_state_dir(shared)
    assert mode(shared) == 0o700


def test_a_state_dir_that_cannot_be_made_says_so_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DaemonError) as caught:
        prepare_state_dir(blocker / "state")
    assert str(caught.value).startswith(f"cannot use the state dir {blocker / 'state'}: ") and "\n" not in str(caught.value)


def add_jobs(path: Path, count: int) -> None:
    store = SqliteJobStore(path)
    for number in range(count):
        store.add(Path(f"/inbox/clip-{number:04d}-{'x' * 200}.mp4"), relpath=f"clip-{number}.mp4", size=number,
                  mtime=1.0, fingerprint=f"{number}:{'f' * 64}")
    store.close()


def test_the_database_and_its_wal_are_owner_only(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    opened = open_job_store(path)
    opened.store.add(Path("/inbox/a.mp4"), relpath="a.mp4", size=1, mtime=1.0, fingerprint="f")
    assert opened.moved_to is None
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {
        "jobs.sqlite3": 0o600, "jobs.sqlite3-wal": 0o600, "jobs.sqlite3-shm": 0o600}
    opened.store.close()
    path.chmod(0o644)                                   # written by an older midframe
    again = open_job_store(path)
    assert mode(path) == 0o600 and len(again.store.jobs()) == 1
    again.store.close()


def test_a_file_that_is_not_a_database_is_moved_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not SQLite" * 100)
    opened = open_job_store(path, clock=lambda: NOON)
    try:
        assert opened.damaged == "file is not a database"
        assert opened.moved_to == path.with_name("jobs.sqlite3.corrupt-" + _stamp(NOON))
        assert opened.moved_to.read_bytes() == b"this is not SQLite" * 100
        assert opened.store.jobs() == [] and opened.store.counts()["queued"] == 0
    finally:
        opened.store.close()
    path.write_bytes(b"damaged again")                  # a second time in the same second: a new name
    second = open_job_store(path, clock=lambda: NOON)
    second.store.close()
    assert len(aside(path)) == 2 and second.moved_to.name.endswith("-2")


def test_damaged_pages_inside_a_real_database_are_found(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    add_jobs(path, 300)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page: 5 * page] = os.urandom(2 * page)     # the header is fine, the table is not
    path.write_bytes(bytes(data))
    opened = open_job_store(path, clock=lambda: NOON)
    try:
        assert opened.damaged and opened.moved_to is not None and opened.store.jobs() == []
    finally:
        opened.store.close()


def test_a_sound_database_is_kept(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    add_jobs(path, 5)
    opened = open_job_store(path)
    try:
        assert opened.moved_to is None and len(opened.store.jobs()) == 5 and aside(path) == []
    finally:
        opened.store.close()


def _stamp(now: float) -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
