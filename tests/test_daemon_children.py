"""Issue 19, findings 1, 2 and 9 on the real daemon (``python -m midframe watch``) with its real ffmpeg
children stopped (SIGSTOP) or killed (SIGKILL) mid-job: `midframe stop`, SIGTERM and a double SIGINT
end the daemon within 30 s whatever its children do and the job resumes at the next start; a stalled
child shows in `status` and is ended at its deadline; a killed decoder is retried, never failed as a
damaged file; a file declaring 16000x16000 frames goes to failed/ naming its size."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from midframe.sentences import status_sentence
from tests.daemon_process import DaemonProcess, wait_for
from tests.media import declaring_huge_frames, ffprobe_exe, make_clip

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="SIGSTOP and SIGKILL are POSIX")]

SETTINGS = {
    "engine": {"name": "blend", "factor": 2},
    "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
    "resume": {"enabled": True, "segment_frames": 30},
}
EXIT_WITHIN_S = 30


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """20 s at 25 fps (1000 output frames): long enough to be caught mid-job on a fast machine."""
    return make_clip(tmp_path_factory.mktemp("children") / "long.mkv", seconds=20, size="160x120", audio=True)


def video_packets(path: Path) -> int:
    done = subprocess.run([ffprobe_exe() or "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                           "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def by_name(daemon: DaemonProcess, name: str) -> dict | None:
    return next((job for job in daemon.jobs() if job["name"] == name), None)


def child(daemon: DaemonProcess, which: str) -> psutil.Process:
    """The job's decoder (raw frames out on its stdout) or encoder (raw frames in on its stdin)."""
    def find() -> psutil.Process | None:
        for proc in psutil.Process(daemon.proc.pid).children(recursive=True):
            try:
                cmdline = proc.cmdline()
            except psutil.Error:
                continue
            if which == "decoder" and cmdline[-1:] == ["pipe:1"]:
                return proc
            if which == "encoder" and "pipe:0" in cmdline:
                return proc
        return None

    return wait_for(find, timeout=10, step=0.01, what=f"the {which}")


def working(daemon: DaemonProcess, *, past: float) -> dict:
    """Until this run of the daemon reports progress (fps > 0) past ``past`` of the job."""
    return wait_for(lambda: (lambda c: c if c and c["fps"] > 0 and c["progress"] >= past else None)(
        daemon.status()["current"]), timeout=60, step=0.01, what=f"the job past {past:.0%}")


def ends_soon(daemon: DaemonProcess, stopped: psutil.Process) -> float:
    sent = time.monotonic()
    assert daemon.wait_exit(EXIT_WITHIN_S + 5) == 0
    took = time.monotonic() - sent
    assert took < EXIT_WITHIN_S, took
    assert not stopped.is_running() or stopped.status() == psutil.STATUS_ZOMBIE  # no stopped ffmpeg left behind
    return took


def test_stop_sigterm_and_a_double_sigint_end_the_daemon_whatever_its_children_do(tmp_path, long_clip):
    daemon = DaemonProcess(tmp_path / "run", {**SETTINGS, "daemon": {"child_stall_seconds": 120}})
    shutil.copy(long_clip, daemon.inbox / "long.mkv")
    took = {}
    try:
        # 1. The decoder stopped, then `midframe stop`.
        daemon.start()
        working(daemon, past=0.1)
        decoder = child(daemon, "decoder")
        decoder.suspend()
        assert daemon.cli("stop").returncode == 0
        took["stop"] = ends_soon(daemon, decoder)

        # 2. The decoder stopped, then SIGTERM. The job went on from where it stopped.
        daemon.start()
        before = working(daemon, past=0.0)
        assert before["frames_done"] >= 100, before
        working(daemon, past=0.35)
        decoder = child(daemon, "decoder")
        decoder.suspend()
        daemon.signal(signal.SIGTERM)
        took["SIGTERM"] = ends_soon(daemon, decoder)

        # 3. The encoder stopped (the model loop then waits to hand it frames), then SIGINT twice.
        daemon.start()
        working(daemon, past=0.6)
        encoder = child(daemon, "encoder")
        encoder.suspend()
        time.sleep(0.5)
        daemon.signal(signal.SIGINT)
        daemon.signal(signal.SIGINT)
        took["SIGINT x2"] = ends_soon(daemon, encoder)

        # 4. Left alone, the job finishes from its last checkpoint, and the output has every frame.
        daemon.start()
        job = daemon.wait_jobs_final(1, timeout=90)[0]
        assert job["state"] == "done", job
        assert job["resumed_from"] >= 0.5 * job["frames_total"], job
        assert job["frames_total"] == 1000 and video_packets(Path(job["output"])) == 1000
        assert daemon.visible_outputs() == ["long.50fps.mkv"] and list(daemon.failed.glob("*")) == []
        log = (daemon.logs / "midframe.log").read_text()
        assert log.count("it resumes from its last checkpoint") >= 3, log
    finally:
        daemon.stop_if_running()
    print("exit after the stop request, with a stopped child:", {k: f"{v:.1f} s" for k, v in took.items()})


def test_a_stalled_child_shows_in_status_and_a_killed_one_is_retried_not_failed(tmp_path, long_clip):
    daemon = DaemonProcess(tmp_path / "run", {**SETTINGS, "daemon": {"child_stall_seconds": 4}})
    shutil.copy(long_clip, daemon.inbox / "a.mkv")
    try:
        daemon.start()
        # Finding 2: kill -9 of the decoder (what the OOM killer does) mid-job.
        working(daemon, past=0.1)
        child(daemon, "decoder").kill()
        a = wait_for(lambda: (lambda j: j if j["state"] == "queued" and j["error"] else None)(by_name(daemon, "a.mkv")),
                     timeout=20, step=0.05, what="a.mkv back in the queue")
        assert a["error"] == "converting a.mkv: the decoder was killed by signal 9 (SIGKILL)", a

        # Finding 1: the decoder of the next job stopped: status says so, then the deadline ends it.
        shutil.copy(long_clip, daemon.inbox / "b.mkv")
        working(daemon, past=0.1)
        decoder = child(daemon, "decoder")
        decoder.suspend()
        status = wait_for(lambda: (lambda s: s if (s["current"] or {}).get("stalled") else None)(daemon.status()),
                          timeout=10, step=0.05, what="status to say the job is stalled")
        stalled = status["current"]["stalled"]
        assert stalled.startswith("the decoder has made no progress for ") and "(stopped at 4 s" in stalled
        assert status["current"]["eta_s"] is None and status["state"] == "working"
        # What `midframe status` prints from that answer (the command itself would outlive the stall here).
        assert f"\n  stalled: {stalled}" in status_sentence(status)
        b = wait_for(lambda: (lambda j: j if j and j["state"] == "queued" and j["error"] else None)(
            by_name(daemon, "b.mkv")), timeout=20, step=0.05, what="b.mkv back in the queue")
        assert b["error"].startswith("converting b.mkv: the decoder made no progress for "), b
        # The news of the stall went out once, as a job event (desktop, tray, Apprise URLs read these).
        news = [e for e in daemon.client().events(0)["events"] if e["kind"] == "stalled"]
        assert [(e["title"], e["body"].startswith("the decoder has made no progress")) for e in news] == [
            ("midframe: b.mkv stalled", True)], news
        assert not decoder.is_running() or decoder.status() == psutil.STATUS_ZOMBIE

        # Finding 9: a file declaring 16000x16000 frames fails alone, before any decoding.
        declaring_huge_frames(tmp_path / "huge.mkv").rename(daemon.inbox / "huge.mkv")
        job = wait_for(lambda: (lambda j: j if j and j["state"] == "failed" else None)(by_name(daemon, "huge.mkv")),
                       timeout=30, step=0.1, what="huge.mkv to fail")
        assert "16000x16000 frames" in job["error"] and "engine.max_frame_pixels" in job["error"], job
        error_file = wait_for(lambda: (daemon.failed / "huge.mkv.error.txt").is_file() and
                              (daemon.failed / "huge.mkv.error.txt").read_text(), timeout=10, what="the error file")
        assert "16000x16000" in error_file and "33177600" in error_file, error_file

        # Neither killed nor stalled decoder failed its file: both wait for their retry, in the inbox.
        assert sorted(p.name for p in daemon.failed.iterdir()) == ["huge.mkv", "huge.mkv.error.txt"]
        assert {"a.mkv", "b.mkv"} <= set(daemon.inbox_names())
        assert daemon.status()["state"] != "paused"
        log = (daemon.logs / "midframe.log").read_text()
        assert "truncated or damaged" not in log and "trying again in" in log
        assert daemon.cli("stop").returncode == 0 and daemon.wait_exit(EXIT_WITHIN_S) == 0
    finally:
        daemon.stop_if_running()
