"""Early verdicts: a file that is not a video fails as it settles, not when its turn comes behind a long
job; a video still being copied is not failed for looking cut short. A real daemon on real folders."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, wait_for
from tests.media import make_clip

pytestmark = pytest.mark.timeout(240)


def test_a_non_video_fails_as_it_settles_while_a_long_job_is_held(tmp_path: Path):
    media = tmp_path / "media"
    media.mkdir()
    long_clip = make_clip(media / "long.mkv", seconds=20, size="320x240", audio=False)
    half_clip = make_clip(media / "half.mp4", seconds=2, size="160x120")  # moov at the end: a half looks cut short
    daemon = DaemonProcess(tmp_path / "d", {"resume": {"segment_frames": 24}})
    try:
        daemon.start()
        shutil.copyfile(long_clip, daemon.inbox / ".long.mkv.part")
        (daemon.inbox / ".long.mkv.part").replace(daemon.inbox / "long.mkv")
        wait_for(lambda: (daemon.status()["current"] or {}).get("frames_done", 0) > 0, timeout=60, step=0.05,
                 what="the long job under way")
        assert daemon.client().pause()["state"] == "paused"  # held between batches: its turn is not over

        # a video arriving in two parts, the first closed and quiet for longer than settle_seconds
        data = half_clip.read_bytes()
        (daemon.inbox / "half.mp4").write_bytes(data[: len(data) // 2])
        time.sleep(1.5)

        dropped = time.monotonic()
        (daemon.inbox / "notes.mp4").write_text("a shopping list, not a video\n" * 40)
        failed = daemon.failed / "notes.mp4"
        wait_for(lambda: failed.exists() and failed.with_name("notes.mp4.error.txt").exists(), timeout=15,
                 step=0.05, what="notes.mp4 in failed/ with its error file")
        took = time.monotonic() - dropped
        assert took < 10, took
        assert "not a video" in failed.with_name("notes.mp4.error.txt").read_text()
        status = daemon.status()
        assert status["state"] == "paused" and status["current"]["name"] == "long.mkv", status
        assert status["failed"] == 1, status

        with open(daemon.inbox / "half.mp4", "ab") as rest:  # the copy goes on
            rest.write(data[len(data) // 2:])
        time.sleep(1.0)
        assert daemon.status()["failed"] == 1  # only notes.mp4: the half copy was not failed
        daemon.client().resume()
        jobs = {job["name"]: job for job in daemon.wait_jobs_final(3, timeout=150)}
        assert jobs["notes.mp4"]["state"] == "failed"
        assert jobs["long.mkv"]["state"] == "done", jobs["long.mkv"]
        assert jobs["half.mp4"]["state"] == "done", jobs["half.mp4"]
        # the verdict came from one look as it settled, logged as such
        assert "notes.mp4 is looked at as it settled" in daemon.log()
    finally:
        daemon.stop_if_running()
