"""engine auto: the per-scene choice as pure decisions (schedule, pick, scenes), and the dispatcher
that walks frames, samples them, and sends each pair to its scene's engine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from midframe.engine.interpolators.auto import AutoInterpolator
from midframe.engine.interpolators.base import FramePair, Preparing
from midframe.engine.interpolators.blend import BlendInterpolator
from midframe.engine.interpolators.chooser import (
    SampleSchedule,
    SceneChoice,
    ScenePlan,
    pick,
    psnr,
    scene_choices,
    stride_for,
)
from midframe.errors import WeightsError

# --- the schedule --------------------------------------------------------------------------------


def walk(schedule: SampleSchedule, frames: int, cuts: Sequence[int] = ()) -> list[int]:
    """The frames sampled in a walk over ``frames`` source frames with scenes starting at ``cuts``."""
    taken, start = [], 0
    for k in range(1, frames - 1):
        start = max([start, *[c for c in cuts if c <= k - 1]])
        if schedule.due(k, scene_start=start):
            schedule.take(k)
            taken.append(k)
    return taken


def test_one_scene_is_sampled_every_stride_frames_from_its_start():
    assert walk(SampleSchedule(stride=10), 50) == [1, 11, 21, 31, 41]


def test_a_new_scene_is_sampled_at_once_not_at_the_old_rhythm():
    taken = walk(SampleSchedule(stride=10), 50, cuts=[14])
    assert taken == [1, 11, 15, 25, 35, 45]


def test_many_short_scenes_cannot_run_far_ahead_of_the_rate():
    cuts = list(range(0, 300, 4))  # a scene every 4 frames: each would want a sample
    schedule = SampleSchedule(stride=20, slack=3)
    taken = walk(schedule, 300, cuts=cuts)
    assert len(taken) <= 300 / 20 + 3
    assert len(taken) >= 300 / 20 - 1  # still samples at about the steady rate
    # never more than the slack ahead at any point of the walk
    assert all(n + 1 <= k / 20 + 3 + 1 for n, k in enumerate(taken))


def test_stride_follows_the_share_of_model_frames():
    assert stride_for(frames_in=1000, model_frames=1000, share=0.1) == 10
    assert stride_for(frames_in=1000, model_frames=3000, share=0.1) == 4  # factor 4: three per pair
    assert stride_for(frames_in=1000, model_frames=100_000, share=0.1) == 2  # never every frame
    assert stride_for(frames_in=10, model_frames=0) == 10
    with pytest.raises(ValueError):
        SampleSchedule(stride=0)


# --- picking ---------------------------------------------------------------------------------------


def test_pick_takes_the_best_mean_and_breaks_ties_by_preference():
    assert pick({"rife": [30.0, 32.0], "dis": [31.5, 31.0]}) == "dis"
    assert pick({"rife": [31.0], "dis": [31.0]}) == "rife"
    # Another candidate must beat the first by more than the margin.
    assert pick({"rife": [31.0], "dis": [31.15]}) == "rife"
    assert pick({"rife": [31.0], "dis": [31.15]}, margin=0.1) == "dis"
    assert pick({"rife": [31.0], "dis": [31.25]}) == "dis"
    assert pick({"rife": [32.0], "dis": [31.0]}, margin=0.0) == "rife"
    assert pick({"dis": [31.0], "rife": [31.0]}) == "rife"  # the order of the mapping does not matter
    assert pick({"rife": [], "dis": []}) is None
    assert pick({}) is None
    assert pick({"dis": [20.0]}) == "dis"


def test_scene_choices_group_samples_by_scene_and_default_where_unsampled():
    spans = [(0, 10), (10, 12), (12, 30)]
    samples = [(1, {"rife": 30.0, "dis": 32.0}), (5, {"rife": 31.0, "dis": 32.0}),
               (20, {"rife": 35.0, "dis": 33.0}), (99, {"rife": 0.0, "dis": 50.0})]
    choices = scene_choices(spans, samples, default="rife")
    assert [(c.start, c.end, c.engine, c.samples) for c in choices] == [
        (0, 10, "dis", 2), (10, 12, "rife", 0), (12, 30, "rife", 1)]
    assert choices[0].scores == {"rife": 30.5, "dis": 32.0}
    assert choices[1].scores == {}


def test_a_choice_round_trips_through_json():
    choice = SceneChoice(start=3, end=40, engine="dis", scores={"rife": 31.234, "dis": 33.456}, samples=2)
    data = choice.to_json()
    assert data == {"start": 3, "end": 40, "engine": "dis", "scores": {"rife": 31.23, "dis": 33.46}, "samples": 2}
    again = SceneChoice.from_json(data)
    assert (again.start, again.end, again.engine, again.samples) == (3, 40, "dis", 2)


def test_plan_maps_each_source_frame_to_its_scene_engine():
    plan = ScenePlan([SceneChoice(10, 20, "dis"), SceneChoice(0, 10, "rife"), SceneChoice(25, 30, "dis")],
                     default="rife")
    assert [plan.engine_at(i) for i in (0, 9, 10, 19, 20, 24, 25, 29, 30, -1)] == [
        "rife", "rife", "dis", "dis", "rife", "rife", "dis", "dis", "rife", "rife"]


def test_psnr_of_both_depths():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == 99.0
    assert psnr(a + 1, a) == pytest.approx(48.13, abs=0.01)
    deep = np.zeros((4, 4, 3), np.uint16)
    assert psnr(deep + 257, deep) == pytest.approx(48.13, abs=0.01)


# --- the dispatcher ----------------------------------------------------------------------------------


class Holder:
    """An engine that holds the first frame of each pair: exact where the picture does not move on."""

    name = "dis"
    device = "cpu"
    batch_size: int | None = None
    threads = 0
    uses_opencv = False
    backend: str | None = None

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.on_preparing: Preparing | None = None

    def load(self) -> None:
        pass

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        self.seen.extend(pair.index for pair in batch)
        return [pair.a.copy() for pair in batch]

    def close(self) -> None:
        pass


def frames_of(values: Sequence[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    out = []
    for index, value in enumerate(values):
        frame = np.full((8, 8, 3), value, np.uint8)
        out.append((index, frame, frame[..., 0].astype(np.float32) / 255.0))
    return out


def test_choose_picks_per_scene_by_rebuilding_real_frames():
    # Scene 0..19: a steady fade (the blend rebuilds it exactly). Scene 20..39: each value shown twice
    # then a step; its samples (21, 25, ...: one at the scene's start, then every 4) are the second
    # showing of a value, which holding the first frame rebuilds exactly and blending does not.
    fade = [10 * i for i in range(20)]
    steps = [250 - 12 * (i // 2) for i in range(20)]
    values = fade + steps
    cuts = {20}
    frames = frames_of(values)
    labelled = iter(range(1, len(values)))

    def classify_by_index(a: np.ndarray, b: np.ndarray) -> str:
        return "cut" if next(labelled) in cuts else "motion"

    auto = AutoInterpolator({"rife": BlendInterpolator(), "dis": Holder()})
    choices = auto.choose(frames, classify=classify_by_index, stride=4)
    assert [(c.start, c.end) for c in choices] == [(0, 20), (20, 40)]
    assert [c.engine for c in choices] == ["rife", "dis"]
    assert all(c.samples >= 2 for c in choices)
    assert choices[0].scores["rife"] == 99.0 and choices[0].scores["dis"] < 40
    assert choices[1].scores["dis"] > choices[1].scores["rife"]
    assert auto.choices == choices
    # Then pairs go to their scene's engine, in batches that mix scenes, results in order.
    holder = auto.engines["dis"]
    holder.seen.clear()
    batch = [FramePair(i, frames[i][1], frames[i + 1][1], 0.5) for i in (18, 20, 21, 3)]
    made = auto.interpolate(batch)
    assert holder.seen == [20, 21]
    assert [int(frame[0, 0, 0]) for frame in made] == [185, values[20], values[21], 35]


def test_choose_skips_frames_whose_neighbours_do_not_move_and_keeps_the_default_there():
    frames = frames_of([50] * 10)
    auto = AutoInterpolator({"rife": BlendInterpolator(), "dis": Holder()})
    choices = auto.choose(frames, classify=lambda a, b: "static", stride=2)
    assert [(c.start, c.end, c.engine, c.samples) for c in choices] == [(0, 10, "rife", 0)]


def test_choose_never_samples_across_a_cut():
    frames = frames_of([0, 100, 200, 10, 110, 210])
    labelled = iter(range(1, 6))
    auto = AutoInterpolator({"rife": BlendInterpolator(), "dis": Holder()})
    choices = auto.choose(frames, classify=lambda a, b: "cut" if next(labelled) else "motion", stride=1)
    assert all(c.samples == 0 for c in choices) and len(choices) == 6


def test_use_refuses_choices_for_an_engine_it_does_not_have():
    auto = AutoInterpolator({"rife": BlendInterpolator()})
    with pytest.raises(WeightsError, match="dis"):
        auto.use([SceneChoice(0, 5, "dis")])
    with pytest.raises(ValueError):
        AutoInterpolator({})
