"""engine auto in a real daemon, through a per-folder profile: the job's history (``jobs --json``) and the
dashboard's view of it carry the engine chosen for each scene."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from midframe.web.view import dashboard_state, engine_summary
from tests.auto_clips import FAST, SLOW, spliced_clip
from tests.daemon_process import DaemonProcess

pytestmark = pytest.mark.slow


def test_the_daemon_records_the_choice_per_scene(tmp_path: Path, bigbuckbunny: Path, rife_weights: Path):
    daemon = DaemonProcess(tmp_path / "run", {
        "engine": {"name": "blend", "device": "cpu"},
        "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
        "profiles": {"best": {"engine": {"name": "auto", "quality": "high", "tta": 2}}},
    })
    clip = tmp_path / "spliced.mkv"
    spliced_clip(bigbuckbunny, clip)
    daemon.start(timeout=60)
    try:
        shutil.copy(clip, daemon.inbox / "best" / "spliced.mkv")
        jobs = daemon.wait_jobs_final(1, timeout=400)
        listing = daemon.cli("jobs", "--json")
    finally:
        daemon.stop_if_running()
    job = jobs[0]
    assert job["state"] == "done", job.get("error")
    assert job["profile"] == "best"
    assert job["settings"]["engine"]["name"] == "auto" and job["settings"]["engine"]["quality"] == "high"
    scenes = job["scenes"]
    assert [(s["start"], s["end"], s["engine"]) for s in scenes] == [(0, SLOW, "dis"), (SLOW, SLOW + FAST, "rife")]
    assert all(set(s["scores"]) == {"rife", "dis"} for s in scenes)
    assert json.loads(listing.stdout)[0]["scenes"] == scenes  # `midframe jobs --json` is the same record

    state = dashboard_state({"state": "idle", "current": None}, jobs, folders=["", "best"], upload_max_bytes=1)
    shown = state["history"][0]["engines"]
    assert shown["line"] == "auto: dis for 1 scene, rife for 1 scene"
    assert shown["scenes"][0].startswith(f"frames 0-{SLOW - 1}: dis (")


def test_engine_summary_in_words():
    assert engine_summary([]) is None
    summary = engine_summary([
        {"start": 0, "end": 10, "engine": "rife", "scores": {"rife": 31.0, "dis": 30.5}},
        {"start": 10, "end": 12, "engine": "rife", "scores": {}},
        {"start": 12, "end": 40, "engine": "dis", "scores": {"rife": 28.0, "dis": 33.25}},
    ])
    assert summary == {"line": "auto: rife for 2 scenes, dis for 1 scene", "scenes": [
        "frames 0-9: rife (rife 31.00 dB, dis 30.50 dB)", "frames 10-11: rife (not sampled)",
        "frames 12-39: dis (rife 28.00 dB, dis 33.25 dB)"]}


def test_a_film_of_many_scenes_is_summed_up_not_listed_in_full():
    scenes = [{"start": 2 * i, "end": 2 * i + 2, "engine": "dis" if i % 3 else "rife", "scores": {}} for i in range(100)]
    summary = engine_summary(scenes)
    assert summary["line"] == "auto: rife for 34 scenes, dis for 66 scenes"
    assert len(summary["scenes"]) == 21 and summary["scenes"][-1].startswith("... and 80 more scenes")
