"""The real daemon process: a setting this machine cannot honour pauses it (the videos stay put) until
the config file is fixed, and copies that stall are converted once, never failed."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, sha256, wait_for
from tests.engine_helpers import missing_cuda_device
from tests.media import make_clip, probe_json

pytestmark = pytest.mark.slow

SETTLE_S = 0.5
STALL_S = 3 * SETTLE_S


def frames(path: Path) -> int:
    video = next(s for s in probe_json(path)["streams"] if s["codec_type"] == "video")
    return int(video["nb_read_frames"])


def stalled_copy(source: Path, target: Path, *, keep_open: bool, until=lambda: True) -> None:
    """Copy 40 %, stall for 3x settle_seconds (and until ``until()``), holding the file open or closing
    it meanwhile, as a writer on another machine would look from here; then copy the rest."""
    data = source.read_bytes()
    cut = len(data) * 2 // 5
    handle = open(target, "wb")  # noqa: SIM115
    try:
        handle.write(data[:cut])
        handle.flush()
        if not keep_open:
            handle.close()
        time.sleep(STALL_S)
        wait_for(until, timeout=30, what=f"the daemon to look at {target.name}")
        if not keep_open:
            handle = open(target, "ab")  # noqa: SIM115
        handle.write(data[cut:])
    finally:
        handle.close()


def test_a_missing_device_pauses_with_the_videos_in_place_until_the_config_is_fixed(tmp_path, rife_weights):
    device = missing_cuda_device()
    daemon = DaemonProcess(tmp_path / "run", {"engine": {"name": "rife", "device": device},
                                              "daemon": {"settle_seconds": SETTLE_S}})
    media = tmp_path / "media"
    media.mkdir()
    clips = {"a.mkv": make_clip(media / "a.mkv", seconds=0.6, size="96x64"),
             "b.mp4": make_clip(media / "b.mp4", seconds=0.6, size="64x64")}
    try:
        daemon.start()
        for name, clip in clips.items():
            shutil.copy(clip, daemon.inbox / name)
        wait_for(lambda: len(daemon.jobs()) == 2, timeout=20, what="both files queued")
        time.sleep(2 * SETTLE_S)
        status = json.loads(daemon.cli("status", "--json").stdout)
        assert status["state"] == "paused" and status["queued"] == 2 and status["failed"] == 0, status
        assert status["paused_reason"].startswith(f"engine.device: {device}: not available"), status
        assert daemon.inbox_names() == ["a.mkv", "b.mp4"]   # the videos stay put
        assert daemon.visible_outputs() == [] and [job["attempts"] for job in daemon.jobs()] == [0, 0]

        daemon.config["engine"]["device"] = "cpu"                               # the fix: nothing else
        daemon.write_config()
        jobs = daemon.wait_jobs_final(2, timeout=120)
        assert [job["state"] for job in jobs] == ["done", "done"], jobs
        for job in jobs:
            assert frames(Path(job["output"])) == 2 * frames(clips[job["name"]])
        assert daemon.status()["paused_reason"] is None
        assert "resumed" in daemon.log()
    finally:
        daemon.stop_if_running()


def test_copies_that_stall_for_three_settle_times_are_converted_once_never_failed(tmp_path):
    daemon = DaemonProcess(tmp_path / "run", {"daemon": {"settle_seconds": SETTLE_S}})
    media = tmp_path / "media"
    media.mkdir()
    clips = {"held.mp4": make_clip(media / "held.mp4", seconds=1.0, size="160x96"),
             "closed.mkv": make_clip(media / "closed.mkv", seconds=1.0, size="128x96")}
    try:
        daemon.start()
        # One writer holds the file open through the stall; the other closes it meanwhile, as a writer
        # on another machine would look from here.
        looked_at = {"held.mp4": lambda: "held.mp4: another program still has it open" in daemon.log(),
                     "closed.mkv": lambda: "closed.mkv is truncated" in daemon.log()}
        copies = [threading.Thread(target=stalled_copy, args=(clip, daemon.inbox / name),
                                   kwargs={"keep_open": name == "held.mp4", "until": looked_at[name]})
                  for name, clip in clips.items()]
        for copy in copies:
            copy.start()
        for copy in copies:
            copy.join()
        jobs = daemon.wait_jobs_final(2, timeout=60)
        assert sorted(job["name"] for job in jobs) == sorted(clips)              # once each
        assert all(job["state"] == "done" and job["attempts"] == 1 for job in jobs), jobs    # never failed
        for job in jobs:
            assert frames(Path(job["output"])) == 2 * frames(clips[job["name"]]), job
            assert sha256(daemon.done / job["name"]) == sha256(clips[job["name"]])
        log = daemon.log()
        assert "held.mp4: another program still has it open for writing; waiting" in log
        assert "closed.mkv is truncated" in log and "may still be arriving" in log     # the grace at work
        assert not daemon.failed.exists()
    finally:
        daemon.stop_if_running()
