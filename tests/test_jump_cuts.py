"""Cuts that keep their background (jump cuts) are cuts; fast motion is not. Real footage, encoded
with x264 as any video is, decided by the planner the frame loop uses (engine/pairs.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig
from midframe.engine import pairs, scenes
from midframe.engine.timeline import factor_timeline
from tests.animation import decode, write
from tests.engine_helpers import LOSSLESS, run_convert
from tests.media import read_frames

X264 = ["-c:v", "libx264", "-crf", "20", "-pix_fmt", "yuv420p"]


def cut_pairs(frames: np.ndarray, **engine) -> list[int]:
    """The pairs (i, i + 1) the frame loop would hold instead of interpolating as a cut."""
    thumbs = [scenes.thumbnail(frame) for frame in frames]
    timeline = factor_timeline(frames_in=len(thumbs), factor=2, fps_in=Fraction(25))
    planner = pairs.PairPlanner(timeline=timeline, engine=EngineConfig(**engine), thumb=thumbs.__getitem__)
    return [i for i in range(len(thumbs) - 1) if planner.decide(i, i + 1).kind == "cut"]


def encoded(frames: np.ndarray, path: Path) -> np.ndarray:
    return read_frames(write(frames, path, codec=X264, audio=False))


@pytest.fixture(scope="module")
def small(bigbuckbunny: Path) -> np.ndarray:
    return decode(bigbuckbunny, width=640, height=360)


@pytest.fixture(scope="module")
def jump(small: np.ndarray, tmp_path_factory) -> Path:
    """One slowly moving shot, then the same shot four seconds later: frames 0-11, then 100-111."""
    return write(np.concatenate([small[0:12], small[100:112]]), tmp_path_factory.mktemp("jump") / "jump.mp4",
                 codec=X264)


def test_a_jump_to_a_later_time_of_the_same_shot_is_a_cut(jump):
    frames = read_frames(jump)
    assert cut_pairs(frames) == [11]
    # The background stays: after motion compensation it scores under the plain cut threshold.
    assert scenes.classify(scenes.thumbnail(frames[11]), scenes.thumbnail(frames[12]), scene_threshold=0.08,
                           static_threshold=0.01).kind == "motion"
    assert cut_pairs(frames, scene_detect=False) == []


def test_a_subject_that_jumps_across_a_still_background_is_a_cut(small, tmp_path):
    # A vlog's jump cut: the speaker (a 120x120 part of another frame) drifts a pixel a frame, then is
    # somewhere else, on a background that does not move.
    background, subject = small[0], small[60][100:220, 300:420]
    frames = []
    for k in range(24):
        frame = background.copy()
        x, y = (100 + k, 100) if k < 12 else (400 + k, 180)
        frame[y:y + 120, x:x + 120] = subject
        frames.append(frame)
    assert cut_pairs(encoded(np.stack(frames), tmp_path / "vlog.mp4")) == [11]


def pan(picture: np.ndarray, speeds: list[int]) -> np.ndarray:
    """A 640x360 window moving across ``picture`` by ``speeds`` pixels a frame."""
    x, frames = 0, [picture[200:560, 0:640]]
    for speed in speeds:
        x += speed
        frames.append(picture[200:560, x:x + 640])
    return np.stack(frames)


def test_fast_motion_is_never_a_jump_cut(bigbuckbunny, small, tmp_path):
    picture = decode(bigbuckbunny, width=1280, height=720, first=60, count=1)[0]
    pans = {
        "whip pan, speeding up and slowing down": [4, 8, 16, 24, 32, 40, 40, 32, 24, 16, 8, 4],
        "starts and stops at 40 px a frame": [0, 0, 0, 40, 40, 40, 40, 40, 40, 0, 0, 0],
        "on twos at 30 px a drawing": [30, 0] * 8,
        "one drawing on threes": [36, 0, 0] * 5,
        "whip pan at 48-64 px a frame": [16, 32, 48, 64, 64, 64, 48, 32],
    }
    for name, speeds in pans.items():
        frames = encoded(pan(picture, speeds), tmp_path / "pan.mp4")
        assert len(frames) == len(speeds) + 1
        assert cut_pairs(frames) == [], name
    # The real footage at two sizes: 131 pairs of motion each, none a cut.
    assert cut_pairs(small) == [] and cut_pairs(decode(bigbuckbunny, width=320, height=180)) == []


def test_a_jump_cut_is_held_not_morphed(jump, tmp_path):
    target = tmp_path / "out.mkv"
    report = run_convert(jump, target, output=LOSSLESS)
    # The file repeats frames 6->7 and 106->107 (a 24 -> 25 fps conversion): still, copied.
    assert (report.frames_cut, report.frames_static, report.frames_interpolated) == (1, 2, 20)
    source, made = read_frames(jump), read_frames(target)
    # The frame between the two times is the later one as it was (t = 0.5 holds the later frame).
    assert np.array_equal(made[23], source[12])
