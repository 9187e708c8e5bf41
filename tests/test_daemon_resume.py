"""Resume through the daemon: interrupted at about 60% (SIGKILL, SIGTERM, `midframe stop`) or during the
final join, restarted, the job continues from where it was and the output is frame-for-frame and
sample-for-sample what an uninterrupted run makes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.daemon_process import DaemonProcess, wait_for
from tests.media import ffmpeg_exe, ffprobe_exe, make_clip, probe_json, read_frames

pytestmark = pytest.mark.slow

SETTINGS = {
    "engine": {"name": "blend", "factor": 2},
    "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
    "resume": {"enabled": True, "segment_frames": 30},
}


def audio_pcm(path: Path) -> bytes:
    return subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-"],
                          check=True, capture_output=True).stdout


def stream_times(path: Path) -> list[tuple[str, str, str]]:
    return [(s["codec_type"], s.get("start_time", ""), s.get("duration", "")) for s in probe_json(path)["streams"]]


@pytest.fixture(scope="module")
def clip_and_reference(tmp_path_factory):
    """A 9 s clip with audio (450 output frames) and its uninterrupted conversion by the same pipeline."""
    from midframe.config import config_from_mapping
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.interpolators import create_interpolator
    from midframe.engine.pipeline import convert

    folder = tmp_path_factory.mktemp("resume-media")
    clip = make_clip(folder / "long.mkv", seconds=9, size="160x120")
    config = config_from_mapping(SETTINGS)
    reference = folder / "reference.mkv"
    convert(clip, reference, work_dir=folder / "work", engine=config.engine, output=config.output,
            resume=config.resume, make_interpolator=lambda s: create_interpolator(s, models_dir=folder),
            ffmpeg=find_ffmpeg())
    return clip, reference, read_frames(reference), audio_pcm(reference)


def check_same_as_reference(output: Path, clip_and_reference) -> None:
    _, reference, frames, pcm = clip_and_reference
    got = read_frames(output)
    assert got.shape == frames.shape
    assert np.array_equal(got, frames), "frames differ from an uninterrupted run"
    assert audio_pcm(output) == pcm, "audio differs from an uninterrupted run"
    assert stream_times(output) == stream_times(reference), "stream timing (sync) differs"


def status_json(daemon: DaemonProcess) -> dict:
    done = daemon.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_until(daemon: DaemonProcess, fraction: float) -> dict:
    return wait_for(lambda: (lambda c: c if c and c["progress"] >= fraction else None)(daemon.status()["current"]),
                    timeout=60, step=0.01, what=f"the job to pass {fraction:.0%}")


def restart_and_see_it_continue(daemon: DaemonProcess, *, at_least: int, resume, cli: bool = False) -> dict:
    """Start again (paused, as before the interruption), resume, and read the status (`midframe status
    --json` with ``cli``) until the pipeline has reported progress of this run (fps > 0; until then the
    figures are the ones saved before the interruption)."""
    daemon.start()
    assert (status_json(daemon) if cli else daemon.status())["state"] == "paused"
    resume()
    read = (lambda: status_json(daemon)) if cli else daemon.status
    current = wait_for(lambda: (lambda c: c if c and c["fps"] > 0 else None)(read()["current"]),
                       timeout=30, step=0.0 if cli else 0.01, what="progress after the restart")
    assert current["frames_done"] >= at_least, (current, at_least)
    return current


def checkpointed(daemon: DaemonProcess) -> int:
    """Output frames in the finished segments the job's manifest records."""
    try:
        manifest = json.loads((daemon.outbox / ".midframe-work" / "job-1" / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return manifest["segments"][-1]["end"] if manifest["segments"] else 0


@pytest.fixture
def wrapper(tmp_path) -> Path:
    """An ffmpeg that naps after the final join (the concat of the segments), so a kill lands there."""
    tools = tmp_path / "tools"
    tools.mkdir()
    script = tools / "ffmpeg"
    script.write_text(WRAPPER.format(ffmpeg=ffmpeg_exe(), marker=tmp_path / "joining"))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    os.symlink(ffprobe_exe(), tools / "ffprobe")
    return script


WRAPPER = """#!/bin/sh
# ffmpeg, except that after the final join (the concat of the segments) it naps, and the test kills
# everything then: the joined file is written but not yet renamed into the outbox.
case "$*" in
  *segments.ffconcat*) "{ffmpeg}" "$@"; rc=$?; touch "{marker}"; sleep 60; exit $rc;;
esac
exec "{ffmpeg}" "$@"
"""


def hold(daemon: DaemonProcess, fraction: float) -> dict:
    """Pause the job once it passes ``fraction``: it holds between two batches, so what follows lands at
    a known point whatever the machine's speed. The pause is saved and survives the restart."""
    run_until(daemon, fraction)
    daemon.client().pause()
    return wait_for(lambda: daemon.status()["current"], timeout=10, what="the job to hold")


def test_one_job_survives_sigterm_stop_sigkill_and_a_kill_during_the_join(tmp_path, clip_and_reference, wrapper):
    """One long job, interrupted four ways in turn; after each restart it goes on from where it stopped
    and the result equals an uninterrupted run. (SIGTERM while frames are being made, timed, is in
    test_daemon_e2e.py: stopping aborts at the next batch boundary either way.)"""
    segment = SETTINGS["resume"]["segment_frames"]
    daemon = DaemonProcess(tmp_path / "run", SETTINGS)
    shutil.copy(clip_and_reference[0], daemon.inbox / "long.mkv")
    daemon.start()
    resume = lambda: daemon.client().resume()  # noqa: E731
    try:
        # 1. SIGTERM: exit 0 within 10 s; every frame made so far is kept.
        held = hold(daemon, 0.25)
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0 and time.monotonic() - sent < 10
        assert daemon.visible_outputs() == []
        restart_and_see_it_continue(daemon, at_least=held["frames_done"], resume=resume)

        # 2. `midframe stop`, the same.
        held = hold(daemon, 0.42)
        assert daemon.cli("stop").returncode == 0
        assert daemon.wait_exit(10) == 0
        restart_and_see_it_continue(daemon, at_least=held["frames_done"], resume=resume)

        # 3. SIGKILL to the whole process group, like a power cut, at about 60%; first the encoder, which
        # writes behind the model, is let catch up with what was made. (The pipeline records a finished
        # segment in the manifest when the next frame arrives, so while held, the last whole segment
        # may not be on record yet: at most two segments are lost.)
        held = hold(daemon, 0.58)
        assert held["progress"] < 0.95, held  # a loaded machine overshoots the pause; some work must be left
        total = held["frames_total"]
        saved = held["frames_done"] - 2 * segment
        wait_for(lambda: checkpointed(daemon) >= saved, timeout=20, what="the segments made so far to be on disk")
        daemon.kill()
        assert daemon.visible_outputs() == []
        # From here on the ffmpeg that naps after the final join (see 4.): MIDFRAME_FFMPEG is the
        # documented way to choose the ffmpeg binary, so the pipeline needs no hook for the test.
        daemon.env["MIDFRAME_FFMPEG"] = str(wrapper)
        restart_and_see_it_continue(daemon, at_least=max(int(0.4 * total), saved),
                                    resume=lambda: daemon.cli("resume"), cli=True)

        # 4. A kill during the final join: the joined file is written, not yet renamed into the outbox.
        wait_for((tmp_path / "joining").exists, timeout=60, step=0.02, what="the final join")
        daemon.kill()
        assert daemon.visible_outputs() == []
        del daemon.env["MIDFRAME_FFMPEG"]
        daemon.start()
        job = daemon.wait_jobs_final(1, timeout=60)[0]
        assert job["state"] == "done", job
        assert job["resumed_from"] == job["frames_total"] == total      # only the join was done again
        check_same_as_reference(Path(job["output"]), clip_and_reference)
        assert daemon.visible_outputs() == ["long.50fps.mkv"]
        assert list((daemon.outbox / ".midframe-work").iterdir()) == []
        log = (daemon.logs / "midframe.log").read_text()
        assert log.count("it resumes from its last checkpoint") >= 4
    finally:
        daemon.stop_if_running()
