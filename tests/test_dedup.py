"""Animation on twos and threes through the whole product: clips made from real footage by holding
its frames (tests/animation.py), judged against the real in-between pictures kept aside.

The window is Big Buck Bunny's frames 32..55 at 320x180, its fastest stretch between the frames the
file itself repeats (31->32 and 56->57, a 24 -> 25 fps conversion), where a hold would be the truth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig, ResumeConfig
from midframe.engine.conversion import JobControl
from midframe.engine.manifest import load_manifest
from midframe.engine.probe import probe
from midframe.errors import Aborted
from tests.animation import Held, decode, held, write
from tests.daemon_process import DaemonProcess
from tests.engine_helpers import FF, LOSSLESS, RecordingBlend, assert_audio_in_sync, run_convert
from tests.media import psnr, read_frames
from tests.test_farm_ranges import ShuffledRenderer

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = {"twos": [2], "threes": [3], "mixed": [1, 1, 1, 1, 2, 2, 2, 2]}
BLEND = EngineConfig(name="blend", factor=2, batch_size=4)


@pytest.fixture(scope="module")
def truth(bigbuckbunny: Path) -> np.ndarray:
    return decode(bigbuckbunny, width=320, height=180, first=32, count=24)


@pytest.fixture(scope="module")
def clips(truth: np.ndarray, tmp_path_factory) -> dict[str, tuple[Held, Path]]:
    folder = tmp_path_factory.mktemp("animation")
    made = {}
    for name, pattern in PATTERNS.items():
        animation = held(truth, pattern)
        made[name] = (animation, write(animation.frames, folder / f"{name}.mkv"))
    return made


def moved_past(animation: Held) -> list[int]:
    """Repeated frames with a next drawing after them: the ones dedup makes in-betweens for."""
    last_drawing = max(animation.drawing)
    return [k for k in animation.repeated() if animation.drawing[k] != last_drawing]


def interpolate(clip: Path, out: Path, *args: str, rate: tuple[str, str] = ("--factor", "2")) -> dict:
    report = out.with_suffix(".json")
    done = subprocess.run(
        [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), *rate,
         "--codec", "ffv1", "--pix-fmt", "gbrp", "--report", str(report), "-q", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(report.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PATTERNS))
def test_rife_makes_animation_move_evenly(name, clips, truth, tmp_path, rife_weights):
    animation, clip = clips[name]
    out = tmp_path / "out.mkv"
    report = interpolate(clip, out, "--engine", "rife", "--device", "cpu")
    made = read_frames(out)
    assert len(made) == report["frames_out"] == 48 and report["frames_in"] == 24
    assert probe(out, ffmpeg=FF).duration == probe(clip, ffmpeg=FF).duration
    assert_audio_in_sync(clip, out)
    repeats = moved_past(animation)
    assert report["dedup_repeats"] == len(repeats) > 0
    # Every repeated frame's time shows the motion there: closer to the real picture than the hold.
    gains = {k: psnr(made[2 * k], truth[k]) - psnr(animation.frames[k], truth[k]) for k in repeats}
    assert min(gains.values()) >= 2.5, gains
    # Drawings, and frames on ones, are the source's frames, bit-exact.
    for k in range(24):
        if k not in animation.repeated():
            assert np.array_equal(made[2 * k], animation.frames[k]), k
    # Inside the animated stretch no output frame repeats the one before it (a hold would be identical
    # in this lossless file; 50 dB is a difference of about 0.8/255 per pixel).
    first, last = 2 * min(animation.drawing[k] for k in repeats), 2 * (max(repeats) + 1)
    still = [j for j in range(first + 1, last + 1) if psnr(made[j], made[j - 1]) > 50]
    assert not still, still


def test_dedup_off_keeps_every_frame_and_holds(clips, tmp_path):
    animation, clip = clips["twos"]
    out = tmp_path / "off.mkv"
    report = interpolate(clip, out, "--engine", "blend", "--dedup", "off")
    made = read_frames(out)
    assert report["dedup_repeats"] == 0
    assert np.array_equal(made[0::2], animation.frames)  # repeats too: today's move-hold-move-hold


def test_x264_animation_is_found_and_live_footage_is_left_alone(bigbuckbunny, clips, truth, tmp_path):
    # On twos, encoded as any animation file is (x264, CRF 20): its repeats differ by compression noise.
    animation, _ = clips["twos"]
    lossy = write(animation.frames, tmp_path / "twos.mp4",
                  codec=["-c:v", "libx264", "-crf", "20", "-pix_fmt", "yuv420p"])
    report = interpolate(lossy, tmp_path / "twos.mkv", "--engine", "blend")
    assert report["dedup_repeats"] == len(moved_past(animation))
    # Big Buck Bunny's first 132 frames on ones, re-encoded (CRF 23), slow motion throughout: nothing is
    # a hold, and every kept frame is the decoded source frame.
    ones = decode(bigbuckbunny, width=320, height=180)
    live = write(ones, tmp_path / "live.mp4", codec=["-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p"])
    out = tmp_path / "live.mkv"
    report = interpolate(live, out, "--engine", "blend")
    assert report["dedup_repeats"] == 0
    assert np.array_equal(read_frames(out)[0::2], read_frames(live))


def test_a_resumed_job_and_farm_segments_equal_the_whole_run(clips, tmp_path):
    """Segments of 6 output frames start inside holds: each decides as the whole run does."""
    animation, clip = clips["mixed"]
    segments = ResumeConfig(segment_frames=6)
    whole = tmp_path / "whole.mkv"
    report = run_convert(clip, whole, engine=BLEND, output=LOSSLESS, resume=segments)
    reference = read_frames(whole)
    assert report.dedup_repeats == len(moved_past(animation))

    control = JobControl()

    def stop(progress):
        if progress.frames_done >= 20:
            control.abort()

    out, work = tmp_path / "resumed.mkv", tmp_path / "work"
    with pytest.raises(Aborted):
        run_convert(clip, out, engine=BLEND, output=LOSSLESS, resume=segments, work_dir=work, control=control,
                    on_progress=stop, interpolator=RecordingBlend(delay_s=0.1))
    done = load_manifest(work).frames_done
    # A stop keeps the segment under way, closed where the stop came (Ctrl-C loses no finished frame),
    # so the resume starts wherever that was: inside a hold or not, it must decide as the whole run.
    assert 0 < done < 48
    resumed = run_convert(clip, out, engine=BLEND, output=LOSSLESS, resume=segments, work_dir=work)
    assert resumed.resumed_from_frame == done
    assert np.array_equal(read_frames(out), reference)

    farm = tmp_path / "farm.mkv"
    run_convert(clip, farm, engine=BLEND, output=LOSSLESS, resume=segments, renderer=ShuffledRenderer(seed=2))
    assert np.array_equal(read_frames(farm), reference)


def test_fps_output_places_frames_at_their_true_time(clips, truth, tmp_path):
    # --fps 75 (a timeline of source times, not of a factor) on threes: every third output frame sits
    # on a source frame; on a repeat it is an in-between, closer to the truth than the hold.
    animation, clip = clips["threes"]
    out = tmp_path / "seventy-five.mkv"
    report = interpolate(clip, out, "--engine", "blend", rate=("--fps", "75"))
    made = read_frames(out)
    assert report["frames_out"] == len(made) == 72 and Fraction(report["fps_out"]) == 75
    assert report["dedup_repeats"] == len(moved_past(animation))
    for k in range(24):
        if k in moved_past(animation):
            assert psnr(made[3 * k], truth[k]) > psnr(animation.frames[k], truth[k]) + 1.0, k
        elif k not in animation.repeated():
            assert np.array_equal(made[3 * k], animation.frames[k]), k


@pytest.mark.slow
def test_the_daemon_and_a_profile_that_turns_it_off(clips, tmp_path):
    animation, clip = clips["twos"]
    config = {"engine": {"name": "blend", "factor": 2}, "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
              "profiles": {"flat": {"engine": {"dedup": "off"}}}}
    daemon = DaemonProcess(tmp_path / "run", config)
    daemon.start()
    try:
        shutil.copy(clip, daemon.inbox / "anim.mkv")
        shutil.copy(clip, daemon.inbox / "flat" / "anim.mkv")
        jobs = daemon.wait_jobs_final(2, timeout=180)
    finally:
        daemon.stop_if_running()
    assert [job["state"] for job in jobs] == ["done", "done"]
    assert {job["profile"]: job["settings"]["engine"]["dedup"] for job in jobs} == {None: "auto", "flat": "off"}
    even = read_frames(daemon.outbox / "anim.50fps.mkv")
    held_as_is = read_frames(daemon.outbox / "flat" / "anim.50fps.mkv")
    assert np.array_equal(held_as_is[0::2], animation.frames)
    for k in range(24):
        if k in moved_past(animation):
            assert psnr(even[2 * k], animation.truth[k]) > psnr(animation.frames[k], animation.truth[k]) + 2.5, k
        else:
            assert np.array_equal(even[2 * k], animation.frames[k]), k
