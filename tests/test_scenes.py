from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig
from midframe.engine.scenes import THUMB_SIZE, SceneDecision, classify, difference, hold_frame, thumbnail
from tests.media import ffmpeg_exe, read_frames

DEFAULTS = EngineConfig()
THRESHOLDS = dict(scene_threshold=DEFAULTS.scene_threshold, static_threshold=DEFAULTS.static_threshold)


def decisions(frames: np.ndarray, **overrides) -> list[SceneDecision]:
    thumbs = [thumbnail(f) for f in frames]
    options = {**THRESHOLDS, **overrides}
    return [classify(a, b, **options) for a, b in zip(thumbs, thumbs[1:])]


@pytest.fixture(scope="module")
def two_shots(bigbuckbunny: Path, tmp_path_factory) -> np.ndarray:
    """A hard cut in real footage: 24 frames of one part of the picture, then 24 of another part
    60 frames later (a cut from a wide-ish shot to another framing), encoded with x264 like any video.

    bigbuckbunny.mp4 repeats one frame every 25 (a 24 -> 25 fps conversion): source frames 6-7 and
    81-82 are duplicates, so output pairs 6 and 45 are identical frames after encoding.
    """
    clip = tmp_path_factory.mktemp("cut") / "cut.mp4"
    graph = (
        "[0:v]trim=start_frame=0:end_frame=24,crop=640:360:0:0,setpts=PTS-STARTPTS[a];"
        "[0:v]trim=start_frame=60:end_frame=84,crop=640:360:640:360,setpts=PTS-STARTPTS[b];"
        "[a][b]concat=n=2:v=1:a=0[v]"
    )
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-i", str(bigbuckbunny), "-filter_complex", graph, "-map", "[v]",
         "-c:v", "libx264", "-crf", "20", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )
    frames = read_frames(clip)
    assert len(frames) == 48
    return frames


def test_hard_cut_in_real_footage_is_found_exactly_at_the_junction(two_shots):
    found = decisions(two_shots)
    kinds = [d.kind for d in found]
    assert [i for i, k in enumerate(kinds) if k == "cut"] == [23]
    assert [i for i, k in enumerate(kinds) if k == "static"] == [6, 45]
    # Clear margins on both sides of the threshold.
    assert found[23].score > 2 * DEFAULTS.scene_threshold
    assert max(d.score for i, d in enumerate(found) if i != 23) < DEFAULTS.scene_threshold / 3


def test_scene_detect_off_never_reports_a_cut(two_shots):
    kinds = [d.kind for d in decisions(two_shots, scene_detect=False)]
    assert "cut" not in kinds
    assert kinds.count("static") == 2


def test_cut_between_two_generated_sources(tmp_path):
    clip = tmp_path / "two.mkv"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=0.4",
         "-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=25",
         "-filter_complex", "[1:v]trim=end_frame=10,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1:a=0[v]",
         "-map", "[v]", "-c:v", "ffv1", str(clip)],
        check=True,
    )
    frames = read_frames(clip)
    assert len(frames) == 20
    kinds = [d.kind for d in decisions(frames)]
    assert [i for i, k in enumerate(kinds) if k == "cut"] == [9]


def test_identical_frames_are_static_and_fast_pans_are_motion(bigbuckbunny):
    frames = read_frames(bigbuckbunny)[40:44]
    a = frames[0]
    assert classify(thumbnail(a), thumbnail(a.copy()), **THRESHOLDS) == SceneDecision("static", 0.0)
    # The same picture moved 24 px sideways (a fast pan) is motion, not a cut.
    panned = np.roll(a, 24, axis=1)
    decision = classify(thumbnail(a), thumbnail(panned), **THRESHOLDS)
    assert decision.kind == "motion"
    # Four frames apart in real footage: still one shot.
    assert classify(thumbnail(frames[0]), thumbnail(frames[3]), **THRESHOLDS).kind == "motion"


def test_a_small_moving_object_is_not_static():
    rng = np.random.default_rng(1)
    a = np.full((720, 1280, 3), 90, np.uint8) + rng.integers(0, 3, (720, 1280, 3), dtype=np.uint8)
    b = a.copy()
    a[300:316, 600:616] = 230  # a 16x16 ball ...
    b[300:316, 630:646] = 230  # ... 30 px further on
    assert classify(thumbnail(a), thumbnail(b), **THRESHOLDS).kind == "motion"


def test_thumbnail_shapes_and_depths():
    rgb8 = np.zeros((71, 93, 3), np.uint8)
    rgb8[..., 1] = 255
    rgb16 = rgb8.astype(np.uint16) * 257
    t8, t16 = thumbnail(rgb8), thumbnail(rgb16)
    assert t8.shape == (THUMB_SIZE[1], THUMB_SIZE[0]) and t8.dtype == np.float32
    assert np.allclose(t8, t16, atol=1e-5)
    assert 0.5 < float(t8.mean()) < 0.65  # pure green is ~0.59 of white in luma
    with pytest.raises(ValueError):
        thumbnail(np.zeros((10, 10), np.uint8))


def test_difference_is_zero_for_equal_and_high_for_unrelated():
    rng = np.random.default_rng(0)
    a = rng.random((36, 64), dtype=np.float32)
    assert difference(a, a) == 0.0
    assert difference(a, rng.random((36, 64), dtype=np.float32)) > 0.15


def test_hold_frame_is_the_nearest():
    assert hold_frame(0.25) == "a"
    assert hold_frame(0.49) == "a"
    assert hold_frame(0.5) == "b"
    assert hold_frame(0.75) == "b"
