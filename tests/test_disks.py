"""Full disks and a vanished job database, on a real daemon (``midframe watch`` in a subprocess) with
real small tmpfs mounts (root with mount: skipped elsewhere, as the output-problem test is).

Issue 19, finding 6: a full done_dir or failed_dir stopped every start (a traceback in
``recover_moves``); a full state dir mid-job left the job "running" in ``jobs`` while ``status`` said
idle, with no pause and no recovery. Finding 11: a job database deleted under the daemon went unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, wait_for
from tests.media import make_clip
from tests.mounts import can_mount
from tests.mounts import mount as mount_fs

pytestmark = pytest.mark.slow

SIZE = "160x96"


def fill(folder: Path) -> Path:
    """A file that takes every free byte of ``folder``'s file system."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (64 << 10))
                handle.flush()
        except OSError:
            pass
    return filler


def copy_in(daemon: DaemonProcess, source: Path, name: str) -> Path:
    hidden = daemon.inbox / ".incoming.tmp"
    shutil.copyfile(source, hidden)
    os.replace(hidden, daemon.inbox / name)
    return daemon.inbox / name


def job_named(daemon: DaemonProcess, name: str) -> dict | None:
    return next((job for job in daemon.jobs() if job["name"] == name), None)


def ended(daemon: DaemonProcess, name: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (job := job_named(daemon, name)) and job["state"] in ("done", "failed") and job,
                    timeout=timeout, step=0.1, what=f"{name} to end:\n{daemon.log()[-2000:]}")


@pytest.fixture
def mounts(tmp_path):
    if not can_mount(tmp_path):
        pytest.skip("needs root with mount (small tmpfs folders to fill); without it a full disk is not simulated")
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        mount_fs("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_full_done_and_failed_folders_never_stop_the_daemon_or_its_start(tmp_path, mounts):
    """Both on one small tmpfs, full from the start: a good and a bad file end as they should, their
    sources stay in the inbox with one log line each, a restart works, and once there is room the
    moves are made at the next rescan."""
    full = mounts(tmp_path / "full", "1m")
    daemon = DaemonProcess(tmp_path / "run", {"daemon": {"done_dir": str(full / "done"),
                                                         "failed_dir": str(full / "failed")}})
    (full / "done").mkdir()
    (full / "failed").mkdir()
    filler = fill(full)
    try:
        daemon.start()
        clip = make_clip(tmp_path / "clip.mkv", seconds=1, size=SIZE)
        copy_in(daemon, clip, "good.mkv")
        (daemon.inbox / "bad.mkv").write_bytes(b"not a video at all\n" * 4000)   # 76 kB: more than is free
        good, bad = ended(daemon, "good.mkv"), ended(daemon, "bad.mkv")
        assert good["state"] == "done" and Path(good["output"]).is_file(), good
        assert bad["state"] == "failed" and "bad.mkv" in bad["error"], bad
        assert sorted(daemon.inbox_names()) == ["bad.mkv", "good.mkv"]          # nothing lost, nothing half-moved
        assert os.listdir(full / "done") == [] and os.listdir(full / "failed") == []
        log = daemon.log()
        assert log.count("cannot move") == 2 and "it stays where it is" in log and "Traceback" not in log
        assert daemon.status()["state"] == "idle"

        daemon.signal(15)
        assert daemon.wait_exit(30) == 0
        daemon.start()                                                         # the start-up recovery: no exit 1
        assert daemon.status()["state"] == "idle" and "Traceback" not in daemon.log()
        assert daemon.log().count("cannot move") == 2

        filler.unlink()                                                        # room again: the next rescan moves
        wait_for(lambda: daemon.inbox_names() == [], timeout=30, what=f"the moves:\n{daemon.log()[-2000:]}")
        assert (full / "done" / "good.mkv").is_file() and (full / "failed" / "bad.mkv").is_file()
        assert f"What went wrong: {bad['error']}\n" in (full / "failed" / "bad.mkv.error.txt").read_text()
        assert {job["name"]: job["path"] for job in daemon.jobs()} == {
            "good.mkv": str(full / "done" / "good.mkv"), "bad.mkv": str(full / "failed" / "bad.mkv")}
    finally:
        daemon.stop_if_running()


def test_a_full_state_dir_mid_job_pauses_and_resumes_and_status_agrees_with_jobs(tmp_path, mounts):
    daemon = DaemonProcess(tmp_path / "run", {"output": {"codec": "libx264", "preset": "ultrafast"},
                                              "resume": {"segment_frames": 24}})
    mounts(daemon.state, "3m")
    try:
        daemon.start()
        clip = make_clip(tmp_path / "long.mkv", seconds=6, size=SIZE)
        copy_in(daemon, clip, "a.mkv")
        wait_for(lambda: (job := job_named(daemon, "a.mkv")) and job["state"] == "running" and job["frames_done"],
                 timeout=60, step=0.02, what="a.mkv to be under way")
        filler = fill(daemon.state)
        paused = wait_for(lambda: (s := daemon.status())["state"] == "paused" and s, timeout=60,
                          what=f"a pause:\n{daemon.log()[-2000:]}")
        assert paused["paused_reason"].startswith(f"daemon.state_dir ({daemon.state}): the disk is full"), paused
        [job] = daemon.jobs()
        assert job["state"] == "running" and paused["current"]["id"] == job["id"]   # the two agree
        assert (daemon.inbox / "a.mkv").exists() and not daemon.failed.exists()
        filler.unlink()
        done = ended(daemon, "a.mkv")
        assert done["state"] == "done" and done["error"] is None, done
        status = daemon.status()
        assert status["paused_reason"] is None and status["state"] == "idle" and status["current"] is None
        assert "resumed" in daemon.log() and "Traceback" not in daemon.log()
    finally:
        daemon.stop_if_running()


def test_a_deleted_or_replaced_job_database_is_written_back(tmp_path):
    daemon = DaemonProcess(tmp_path / "run")
    database = daemon.state / "jobs.sqlite3"
    try:
        daemon.start()
        clip = make_clip(tmp_path / "clip.mkv", seconds=0.5, size=SIZE, audio=False)
        copy_in(daemon, clip, "a.mkv")
        assert ended(daemon, "a.mkv")["state"] == "done"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        wait_for(database.exists, timeout=15, what="the database to be written back")
        # the file is written back first, the log line said after it
        wait_for(lambda: "was deleted while the daemon ran" in daemon.log(), timeout=15, what="the log line")
        with sqlite3.connect(database) as db:                                  # on disk, not only in memory
            assert [row[0] for row in db.execute("SELECT name FROM jobs")] == ["a.mkv"]

        stranger = tmp_path / "stranger.sqlite3"
        with sqlite3.connect(stranger) as db:
            db.execute("CREATE TABLE other (x)")
        os.replace(stranger, database)
        wait_for(lambda: "replaced by another file" in daemon.log(), timeout=15, what="the replacement noticed")
        [aside] = [p for p in daemon.state.iterdir() if p.name.startswith("jobs.sqlite3.replaced-")]
        with sqlite3.connect(aside) as db:                                     # kept, not overwritten
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("other",)]
        copy_in(daemon, make_clip(tmp_path / "b.mkv", seconds=0.5, size=SIZE, source="smptebars", audio=False),
                "b.mkv")
        assert ended(daemon, "b.mkv")["state"] == "done"
        daemon.signal(15)
        assert daemon.wait_exit(30) == 0
        daemon.start()                                                         # the next start knows both jobs
        assert [(job["name"], job["state"]) for job in daemon.jobs()] == [("a.mkv", "done"), ("b.mkv", "done")]
        assert json.loads((daemon.state / "control.json").read_text())["pid"] == daemon.proc.pid
    finally:
        daemon.stop_if_running()
