"""A real daemon process (``python -m midframe watch``) under hostile conditions: a stale control.json
on a port someone else took, a thousand idle connections under a 1024-descriptor limit, a FIFO in the
inbox, 200 files of random bytes named like videos, names that are not UTF-8 or hold a newline, and
start-up errors (a read-only state dir, a corrupt database, no ffmpeg)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_process import ROOT, DaemonProcess
from tests.media import NOISE_TAKEN_FOR_VIDEO, make_clip, noise
from tests.net_helpers import Impostor
from tests.privileges import can_drop_capabilities, without_override

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=0.5, size="64x48")


def test_a_stale_control_json_never_gets_the_token(tmp_path):
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    port = int(daemon.client().url.rsplit(":", 1)[1])
    old_token = (daemon.state / "control.token").read_text().strip()
    daemon.kill()                                         # a crash: control.json stays behind
    control = json.loads((daemon.state / "control.json").read_text())
    impostor = Impostor(port)                             # another program takes the port
    try:
        done = daemon.cli("status")
        assert done.returncode != 0 and f"left by process {control['pid']}, which has ended" in done.stderr
        assert impostor.received == b""                   # not even a connection
        # The pid in control.json is alive again (reused): the client asks the listener for proof.
        control["pid"] = os.getpid()
        (daemon.state / "control.json").write_text(json.dumps(control))
        done = daemon.cli("status")
        assert done.returncode != 0 and "something else listens there" in done.stderr, done.stderr
        assert b"GET /hello?nonce=" in impostor.received and old_token.encode() not in impostor.received
    finally:
        impostor.close()
    daemon.start()
    assert (daemon.state / "control.token").read_text().strip() != old_token     # fresh at every start
    assert daemon.cli("status").returncode == 0
    daemon.stop_if_running()


@pytest.mark.skipif(sys.platform != "linux", reason="counts descriptors in /proc; sets limits with setrlimit")
def test_idle_connections_do_not_stop_status_or_the_inbox_under_1024_descriptors(tmp_path, clip):
    import resource

    attackers = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = attackers + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"this test process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    daemon = DaemonProcess(tmp_path, {"engine": {"name": "dis"}, "daemon": {"rescan_seconds": 1}})
    idle: list[socket.socket] = []
    try:
        daemon.start(preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
        pid = daemon.proc.pid
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert any(line.startswith("Max open files") and line.split()[3:5] == ["1024", "1024"]
                   for line in limits.splitlines())
        address = ("127.0.0.1", int(daemon.client().url.rsplit(":", 1)[1]))
        for _ in range(attackers):
            idle.append(socket.create_connection(address, timeout=10))
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
        status = daemon.cli("status", "--json", timeout=20)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["state"] == "idle"
        shutil.copy(clip, daemon.inbox / "clip.mp4")      # the inbox scan still works
        jobs = daemon.wait_jobs_final(1, timeout=60)
        assert [job["state"] for job in jobs] == ["done"], jobs
        assert descriptors < 200 and threads < 30, (descriptors, threads)
    finally:
        for sock in idle:
            sock.close()
        daemon.stop_if_running()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_a_fifo_in_the_inbox_stops_neither_later_files_nor_sigterm(tmp_path, clip):
    daemon = DaemonProcess(tmp_path, {"engine": {"name": "dis"}, "daemon": {"rescan_seconds": 1}})
    os.mkfifo(daemon.inbox / "y.mp4")                    # there at start-up: found by the first scan
    try:
        daemon.start()
        os.mkfifo(daemon.inbox / "z.mkv")                # arrives while it runs: found by an event
        shutil.copy(clip, daemon.inbox / "clip.mp4")
        jobs = daemon.wait_jobs_final(1, timeout=60)
        assert [(job["name"], job["state"]) for job in jobs] == [("clip.mp4", "done")]
        time.sleep(2.5)                                  # more rescans: still one line each
        log = daemon.log()
        for name in ("y.mp4", "z.mkv"):
            assert log.count(f"{daemon.inbox / name}: ignored: it is a FIFO (named pipe), not a regular file") == 1
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0 and time.monotonic() - sent < 10
    finally:
        daemon.stop_if_running()


def test_200_files_of_random_bytes_named_like_videos_all_fail_with_a_reason(tmp_path):
    daemon = DaemonProcess(tmp_path, {"engine": {"name": "dis"},
                                      "daemon": {"settle_seconds": 0.1, "rescan_seconds": 5}})
    files = dict(noise(seed) for seed in [*NOISE_TAKEN_FOR_VIDEO, *range(2000, 2197)])
    for name, data in files.items():
        (daemon.inbox / name).write_bytes(data)
    try:
        daemon.start()
        jobs = daemon.wait_jobs_final(len(files), timeout=240)
    finally:
        daemon.stop_if_running()
    assert len(jobs) == len(files) == 200
    for job in jobs:
        assert job["state"] == "failed" and job["error"], job
        assert (daemon.failed / job["name"]).read_bytes() == files[job["name"]]
        assert job["error"] in (daemon.failed / f"{job['name']}.error.txt").read_text(encoding="utf-8")
    assert daemon.visible_outputs() == [] and daemon.inbox_names() == []
    assert not daemon.done.exists() or not list(daemon.done.iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes in a name")
def test_names_not_utf8_or_with_a_newline_are_converted_and_logged_escaped(tmp_path, clip):
    daemon = DaemonProcess(tmp_path, {"engine": {"name": "dis"}})
    inbox = os.fsencode(daemon.inbox)
    shutil.copy(clip, os.fsdecode(inbox + b"/caf\xe9.mp4"))
    (daemon.inbox / "two\nlines.mkv").write_bytes(b"not a video\n" * 50)
    try:
        daemon.start()
        jobs = {job["name"]: job for job in daemon.wait_jobs_final(2, timeout=60)}
    finally:
        daemon.stop_if_running()
    assert jobs[os.fsdecode(b"caf\xe9.mp4")]["state"] == "done"
    assert jobs["two\nlines.mkv"]["state"] == "failed"
    assert b"caf\xe9.50fps.mp4" in os.listdir(os.fsencode(daemon.outbox))
    assert sorted(os.listdir(os.fsencode(daemon.failed))) == [b"two\nlines.mkv", b"two\nlines.mkv.error.txt"]
    log = (daemon.logs / "midframe.log").read_bytes().decode("utf-8")          # the sink never broke
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| ", line) for line in log.splitlines()), log
    assert "job 1 queued: caf\\xe9.mp4" in log and "two\\nlines.mkv" in log


def start_up(daemon: DaemonProcess, *, prefix: list[str] | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in daemon.env.items() if not key.startswith("MIDFRAME_FF")}
    return subprocess.run([*(prefix or []), sys.executable, "-m", "midframe", "watch", "--config",
                           str(daemon.config_path)], cwd=ROOT, env={**environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def assert_one_line(done: subprocess.CompletedProcess, text: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith("midframe: error: ") and text in lines[0], lines[0]


@pytest.mark.skipif(not can_drop_capabilities(), reason="cannot take away root's write override here")
def test_a_read_only_state_dir_is_said_in_one_line(tmp_path):
    daemon = DaemonProcess(tmp_path)
    daemon.state.mkdir()
    daemon.state.chmod(0o500)
    try:
        assert_one_line(start_up(daemon, prefix=without_override()),
                        f"cannot use the state dir {daemon.state}: Permission denied")
    finally:
        daemon.state.chmod(0o700)


def test_a_missing_ffmpeg_is_said_in_one_line(tmp_path):
    daemon = DaemonProcess(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    done = start_up(daemon, env={"PATH": str(empty), "IMAGEIO_FFMPEG_EXE": str(tmp_path / "no-ffmpeg")})
    assert_one_line(done, "ffmpeg not found: install it")


def test_a_corrupt_database_is_moved_aside_and_the_inbox_converted_again(tmp_path, clip):
    daemon = DaemonProcess(tmp_path, {"engine": {"name": "dis"}})
    daemon.state.mkdir(mode=0o755)
    garbage = b"\0not a database" * 512
    (daemon.state / "jobs.sqlite3").write_bytes(garbage)
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    try:
        daemon.start()
        jobs = daemon.wait_jobs_final(1, timeout=60)
        assert [(job["name"], job["state"]) for job in jobs] == [("clip.mp4", "done")]
        moved = list(daemon.state.glob("jobs.sqlite3.corrupt-*"))
        assert len(moved) == 1 and moved[0].read_bytes() == garbage
        assert (f"the job database was damaged (file is not a database): moved it to {moved[0]} and started a new "
                "one") in daemon.log()
        modes = {name: stat.S_IMODE((daemon.state / name).stat().st_mode)
                 for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "control.token", "control.json")}
        assert modes == dict.fromkeys(modes, 0o600) and stat.S_IMODE(daemon.state.stat().st_mode) == 0o700
        assert stat.S_IMODE((daemon.logs / "midframe.log").stat().st_mode) == 0o600
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0
    finally:
        daemon.stop_if_running()
