"""The real daemon process on real folders: good and broken inputs, slow copies, a browser download,
SIGKILL in the middle of a job and a restart, SIGTERM while working, the token, the CLI."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, sha256, wait_for
from tests.media import make_clip, probe_json

pytestmark = pytest.mark.slow

GOOD_SIZE = "160x120"


def frames_and_audio(path: Path) -> tuple[int, int, float]:
    info = probe_json(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    return int(video["nb_read_frames"]), len(audio), float(info["format"]["duration"])


class OutboxSpy:
    """Samples the outbox while the daemon works: every visible file must be a finished output."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.seen.update(self.daemon.visible_outputs())
            except OSError:
                pass

    def __enter__(self) -> OutboxSpy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def copy_slowly(source: Path, target: Path, *, chunks: int = 12, pause: float = 0.25) -> None:
    data = source.read_bytes()
    step = len(data) // chunks + 1
    with open(target, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start:start + step])
            handle.flush()
            time.sleep(pause)


def test_daemon_end_to_end(tmp_path):
    daemon = DaemonProcess(tmp_path / "run", {"daemon": {"settle_seconds": 1.0}, "resume": {"segment_frames": 48}})
    media = tmp_path / "media"
    media.mkdir()
    long_clip = make_clip(media / "long.mkv", seconds=8, size=GOOD_SIZE)
    good = {
        "g1.mp4": make_clip(media / "g1.mp4", size=GOOD_SIZE),
        "g2.mkv": make_clip(media / "g2.mkv", size=GOOD_SIZE),
        "g3.mp4": make_clip(media / "g3.mp4", size=GOOD_SIZE, fps="30"),
        "g4.mov": make_clip(media / "g4.mov", size=GOOD_SIZE, seconds=6),
    }
    originals = {name: sha256(path) for name, path in good.items()}
    originals["long.mkv"] = sha256(long_clip)
    truncated = good["g1.mp4"].read_bytes()
    bad = {
        "random.mp4": random.Random(4).randbytes(60_000),
        "empty.mkv": b"",
        "truncated.mp4": truncated[: len(truncated) // 3],
        "text.mkv": b"this is a shopping list, not a video\n" * 20,
    }
    try:
        # 1. A long job, killed like a power cut in the middle.
        shutil.copy(long_clip, daemon.inbox / "long.mkv")
        daemon.start()
        with OutboxSpy(daemon) as spy:
            progress = wait_for(lambda: (daemon.status()["current"] or {}).get("progress", 0) >= 0.4, timeout=60,
                                step=0.02, what="the long job to make progress")
            daemon.kill()
            assert progress
            assert daemon.visible_outputs() == []
            assert (daemon.outbox / ".midframe-work").is_dir()

            # 2. While it is down, more files arrive; they are there at start-up.
            for name, content in bad.items():
                (daemon.inbox / name).write_bytes(content)
            shutil.copy(good["g1.mp4"], daemon.inbox / "g1.mp4")
            (daemon.inbox / "notes.txt").write_text("ignored")
            daemon.start()

            # 3. A slow copy and a browser download renamed at the end.
            copy_slowly(good["g2.mkv"], daemon.inbox / "g2.mkv")
            partial = daemon.inbox / "g3.mp4.part"
            copy_slowly(good["g3.mp4"], partial, chunks=4, pause=0.3)
            os.replace(partial, daemon.inbox / "g3.mp4")
            jobs = daemon.wait_jobs_final(8, timeout=120)
            failed_events = [e for e in daemon.client().events(0)["events"] if e["kind"] == "failed"]

            # 4. SIGTERM while a job runs: exit 0 within 10 s, the job back in the queue.
            shutil.copy(good["g4.mov"], daemon.inbox / "g4.mov")
            def g4_under_way() -> bool:
                current = daemon.status()["current"] or {}
                return current.get("name") == "g4.mov" and current.get("progress", 0) >= 0.2

            wait_for(g4_under_way, timeout=30, step=0.01, what="g4.mov to be under way")
            sent = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit(10) == 0
            assert time.monotonic() - sent < 10
            with sqlite3.connect(daemon.state / "jobs.sqlite3") as db:
                states = db.execute("SELECT name, state FROM jobs ORDER BY id").fetchall()
            assert ("g4.mov", "queued") in states, states
            assert not (daemon.state / "control.json").exists()

            # 5. Start again: it finishes g4; `midframe stop` ends it.
            daemon.start()
            jobs = daemon.wait_jobs_final(9, timeout=60)
            url = daemon.client().url
            done = daemon.cli("stop")
            assert done.returncode == 0, done.stderr
            assert daemon.wait_exit(10) == 0
        by_name = {job["name"]: job for job in jobs}
        assert sorted(by_name) == sorted([*good, *bad, "long.mkv"])

        # Each good input: exactly one output with 2x frames and its audio; the source intact in done.
        expected_outputs = sorted(f"{Path(n).stem}.{60 if n == 'g3.mp4' else 50}fps{Path(n).suffix}"
                                  for n in [*good, "long.mkv"])
        assert daemon.visible_outputs() == expected_outputs
        assert spy.seen <= set(expected_outputs)                  # nothing half-written ever showed
        for name in [*good, "long.mkv"]:
            job = by_name[name]
            assert job["state"] == "done", job
            source = media / name if name != "long.mkv" else long_clip
            frames_in, _, duration_in = frames_and_audio(source)
            frames_out, audio_streams, duration_out = frames_and_audio(Path(job["output"]))
            assert frames_out == 2 * frames_in and audio_streams == 1, name
            assert abs(duration_out - duration_in) < 0.1, name
            assert sha256(daemon.done / name) == originals[name]

        # Each bad one: in failed_dir with its reason. Every text about it names it once: its error, the
        # error file (besides its From: line), the notification's body, the log line.
        log = (daemon.logs / "midframe.log").read_text()
        for name, content in bad.items():
            job = by_name[name]
            assert job["state"] == "failed" and job["error"], job
            assert (daemon.failed / name).read_bytes() == content
            reason = (daemon.failed / f"{name}.error.txt").read_text()
            assert job["error"] in reason
            assert job["error"].startswith(name) and job["error"].count(name) == 1, job["error"]
            assert reason.count(name) == 2 and f"\nFrom:     {daemon.inbox / name}\n" in reason, reason
            bodies = [e["body"] for e in failed_events if e["job_id"] == job["id"]]
            assert len(bodies) == 1 and bodies[0].startswith(job["error"]) and bodies[0].count(name) == 1, bodies
            logged = [line for line in log.splitlines() if f"| job {job['id']} failed: " in line]
            assert len(logged) == 1 and logged[0].count(name) == 1, logged
        assert (daemon.inbox / "notes.txt").exists()
        assert daemon.inbox_names() == ["notes.txt"]
        leftovers = list((daemon.outbox / ".midframe-work").iterdir())
        assert leftovers == []

        # The log has one line per job event.
        assert "was interrupted by a crash or kill" in log and "job 1 done" in log

        # The API refuses a request without the token (checked while a daemon runs).
        daemon.start()
        url = daemon.client().url
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/status", timeout=5)
        assert refused.value.code == 401
        status = daemon.cli("status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {"state": "idle", "current": None, "queued": 0, "done": 5, "failed": 4,
                                             "paused_reason": None, "farm": None}
        listed = daemon.cli("jobs")
        assert listed.returncode == 0 and "truncated.mp4" in listed.stdout
    finally:
        daemon.stop_if_running()


def test_a_second_daemon_on_the_same_state_dir_refuses(tmp_path):
    daemon = DaemonProcess(tmp_path)
    try:
        daemon.start()
        second = daemon.cli("watch", timeout=30)
        assert second.returncode != 0
        assert "already using" in second.stderr and str(daemon.proc.pid) in second.stderr
        paused = daemon.cli("pause", "--json")
        assert paused.returncode == 0 and json.loads(paused.stdout)["state"] == "paused"
        daemon.signal(signal.SIGINT)
        assert daemon.wait_exit(10) == 0
        daemon.start()                                             # pause survives a restart
        assert daemon.status()["state"] == "paused"
        resumed = daemon.cli("resume", "--json")
        assert json.loads(resumed.stdout)["state"] == "idle"
    finally:
        daemon.stop_if_running()


def test_a_service_manager_hears_ready_watchdog_reload_and_stopping(tmp_path):
    """$NOTIFY_SOCKET as systemd sets it: sd_notify messages; SIGHUP re-reads the config, a bad edit is
    reported and the last good config kept."""
    address = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    listener.settimeout(0.1)
    heard: list[str] = []

    def hear(line: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(line in message for message in heard):
            assert time.monotonic() < deadline, f"no {line!r} in {heard}"
            try:
                heard.append(listener.recv(4096).decode())
            except TimeoutError:
                pass

    daemon = DaemonProcess(tmp_path / "run", env={"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "1000000"})
    try:
        daemon.start()
        hear("READY=1")
        hear("WATCHDOG=1")
        daemon.config["engine"]["name"] = "nonsense"
        daemon.write_config()
        heard.clear()
        daemon.signal(signal.SIGHUP)
        hear("RELOADING=1")
        hear("READY=1")
        daemon.config["engine"]["name"] = "dis"
        daemon.write_config()
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in daemon.log(), timeout=10, what="the reload")
        log = daemon.log()
        assert "config not reloaded, keeping the last good one" in log and "engine.name = 'nonsense'" in log
        assert "engine changed" in log
        daemon.signal(signal.SIGTERM)
        hear("STOPPING=1")
        assert daemon.wait_exit(10) == 0
    finally:
        daemon.stop_if_running()
        listener.close()


def test_cli_without_a_daemon(tmp_path):
    daemon = DaemonProcess(tmp_path)
    done = daemon.cli("status")
    assert done.returncode != 0 and "no midframe daemon" in done.stderr


@pytest.mark.parametrize(("files", "polling"), [(10, False), (5, True)], ids=["events", "polling"])
def test_a_burst_of_files_is_converted_once_in_order_with_flat_memory(tmp_path, files, polling):
    """benchmarks/load.py in small (it drops 200 files there)."""
    from benchmarks.load import run_load

    figures = run_load(tmp_path, files=files, polling=polling)
    assert figures["converted_once"], figures
    assert figures["queue_order_kept"], figures
    assert figures["rss_last_quarter_mib"] - figures["rss_warm_mib"] < 40, figures
