"""Held drawings (engine/drawings.py), the planner's steps (engine/pairs.py) and true-time placement
(Timeline.between): pure, driven hard with hypothesis."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midframe.config import EngineConfig
from midframe.engine import drawings, pairs
from midframe.engine.drawings import Drawings
from midframe.engine.frameloop import first_source
from midframe.engine.timeline import factor_timeline, fps_timeline
from tests.animation import hold_pattern

FAST = settings(max_examples=200, deadline=None)
STATIC = EngineConfig().static_threshold
LIMIT = drawings.REPEAT_SLACK * STATIC


def changes_of(drawing: tuple[int, ...], *, noise: float = 0.002, move: float = 0.08) -> dict[int, float]:
    """``change(j)``: compression noise where frame ``j`` repeats its drawing, a real change elsewhere."""
    rng = np.random.default_rng(len(drawing))
    return {j: float(rng.uniform(0, noise) if drawing[j] != j else rng.uniform(move, 2 * move))
            for j in range(1, len(drawing))}


def spans(drawing: tuple[int, ...], max_run: int = 3, **kw) -> list[tuple[int, int] | None]:
    change = changes_of(drawing, **kw)
    found = Drawings.of(change.__getitem__, last=len(drawing) - 1, static_threshold=STATIC, max_run=max_run)
    return [found.hold(i) for i in range(len(drawing))]


def expected(drawing: tuple[int, ...], max_run: int = 3) -> list[tuple[int, int] | None]:
    """Each frame's (drawing, next drawing) where the drawing is held 2..max_run+1 frames, has a next
    drawing, and another such hold starts within max_run + 2 frames."""
    starts = sorted(set(drawing))
    nexts = {d: (starts[k + 1] if k + 1 < len(starts) else None) for k, d in enumerate(starts)}
    holds = {d for d in starts if nexts[d] is not None and 2 <= nexts[d] - d <= max_run + 1}
    held = {d for d in holds if any(abs(o - d) <= max_run + 2 for o in holds if o != d)}
    return [(drawing[i], nexts[drawing[i]]) if drawing[i] in held else None for i in range(len(drawing))]


patterns = st.lists(st.integers(1, 6), min_size=1, max_size=6)


@FAST
@given(pattern=patterns, count=st.integers(2, 60), max_run=st.integers(1, 5))
def test_holds_are_found_exactly_where_drawings_are_held_and_recur(pattern, count, max_run):
    drawing = hold_pattern(count, pattern)
    assert spans(drawing, max_run) == expected(drawing, max_run)


def test_on_twos_threes_and_mixed():
    twos = hold_pattern(8, [2])
    assert spans(twos) == [(0, 2), (0, 2), (2, 4), (2, 4), (4, 6), (4, 6), None, None]  # the last has no next
    threes = hold_pattern(9, [3])
    assert spans(threes)[:6] == [(0, 3)] * 3 + [(3, 6)] * 3 and spans(threes)[6:] == [None] * 3
    mixed = hold_pattern(12, [1, 1, 1, 2, 2, 2])
    assert spans(mixed)[:3] == [None] * 3 and spans(mixed)[3:9] == [(3, 5)] * 2 + [(5, 7)] * 2 + [(7, 9)] * 2


def test_a_lone_duplicate_in_live_footage_is_left_alone():
    # Big Buck Bunny repeats one frame every 25 (a 24 -> 25 fps conversion): not animation.
    drawing = tuple(k - 1 if k % 25 == 7 else k for k in range(132))
    assert spans(drawing) == [None] * 132


def test_a_long_pause_is_not_a_hold_but_holds_around_it_are():
    drawing = hold_pattern(20, [2, 2, 9, 2, 2, 2])
    found = spans(drawing)
    assert found[0:4] == [(0, 2)] * 2 + [(2, 4)] * 2
    assert found[4:13] == [None] * 9  # the pause stays still
    assert found[13:19] == [(13, 15)] * 2 + [(15, 17)] * 2 + [(17, 19)] * 2


@FAST
@given(levels=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40))
def test_slow_motion_that_changes_evenly_is_never_a_hold(levels):
    # Real slow motion changes by about as much on every frame (here within a factor of 2), however
    # small the change is: no clear hold.
    change = {j: LIMIT * (0.5 + 0.5 * levels[j]) for j in range(1, len(levels))}
    found = Drawings.of(change.__getitem__, last=len(levels) - 1, static_threshold=STATIC, max_run=3)
    assert all(found.hold(i) is None for i in range(len(levels)))


# --- the planner: what each output frame is made of ----------------------------------------------------

def thumbs_of(drawing: tuple[int, ...], seed: int, jumps: frozenset[int]) -> list[np.ndarray]:
    """64x36 thumbnails: a smooth picture moving a few pixels per drawing, repeats with a little
    noise, and at the drawings in ``jumps`` a part of the picture moved far (a jump cut)."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.random((9, 16)), np.ones((4, 4))).astype(np.float32)
    out, shift, moved = [], 0, False
    for k, d in enumerate(drawing):
        if d == k:
            shift += int(rng.integers(0, 3))
            moved = moved ^ (k in jumps)
        picture = np.roll(base, shift, axis=1)
        if moved:
            picture = picture.copy()
            picture[8:28, 10:30] = np.roll(picture, 20, axis=1)[8:28, 10:30]
        out.append((picture + rng.uniform(-0.001, 0.001, picture.shape)).astype(np.float32))
    return out


@settings(max_examples=60, deadline=None)
@given(pattern=patterns, count=st.integers(2, 70), seed=st.integers(0, 2**16), start=st.integers(0, 200),
       factor=st.integers(2, 4), dedup=st.sampled_from(["auto", "off"]), max_run=st.integers(1, 4),
       jumps=st.frozensets(st.integers(0, 70), max_size=3))
def test_a_segment_or_a_resume_decides_exactly_as_the_whole_run(pattern, count, seed, start, factor, dedup,
                                                                  max_run, jumps):
    drawing = hold_pattern(count, pattern)
    thumbs = thumbs_of(drawing, seed, jumps)
    engine = EngineConfig(name="blend", dedup=dedup, dedup_max_run=max_run)
    timeline = factor_timeline(frames_in=count, factor=factor, fps_in=Fraction(25))
    whole = pairs.PairPlanner(timeline=timeline, engine=engine, thumb=thumbs.__getitem__)
    reference = [whole.step(out.source, out.t) for out in timeline.frames()]
    start %= timeline.frames_out
    # What the frame loop has read: from first_source on, and up to `context` past the current frame.
    low, high = first_source(timeline, start, engine), [0]

    def thumb(index: int) -> np.ndarray:
        if not low <= index <= high[0]:
            raise AssertionError(f"frame {index} read outside {low}..{high[0]}")
        return thumbs[index]

    part = pairs.PairPlanner(timeline=timeline, engine=engine, thumb=thumb)
    for out in timeline.frames(start):
        high[0] = min(out.source + pairs.context(engine), count - 1)
        part.forget(out.source - pairs.context(engine))
        assert part.step(out.source, out.t) == reference[out.index]


def test_steps_on_twos_at_factor_two():
    drawing = hold_pattern(8, [2])
    thumbs = thumbs_of(drawing, 3, frozenset())
    timeline = factor_timeline(frames_in=8, factor=2, fps_in=Fraction(25))
    planner = pairs.PairPlanner(timeline=timeline, engine=EngineConfig(), thumb=thumbs.__getitem__)
    steps = [planner.step(out.source, out.t) for out in timeline.frames()]
    assert steps[0] == pairs.Step("copy", 0)  # the drawing itself, bit-exact
    assert [(s.kind, s.a, s.b, s.t, s.repeat) for s in steps[1:4]] == [
        ("motion", 0, 2, 0.25, False), ("motion", 0, 2, 0.5, True), ("motion", 0, 2, 0.75, True)]
    assert steps[4] == pairs.Step("copy", 2)
    off = pairs.PairPlanner(timeline=timeline, engine=EngineConfig(dedup="off"), thumb=thumbs.__getitem__)
    assert [off.step(o.source, o.t).kind for o in timeline.frames()][:4] == ["copy", "static", "copy", "motion"]


def test_a_cut_between_two_held_drawings_keeps_the_hold_and_the_cut_in_place():
    drawing = hold_pattern(12, [2])
    thumbs = thumbs_of(drawing, 5, frozenset())
    thumbs[6:] = [np.float32(1.0) - t for t in thumbs[6:]]  # another scene from drawing 6 on
    timeline = factor_timeline(frames_in=12, factor=2, fps_in=Fraction(25))
    planner = pairs.PairPlanner(timeline=timeline, engine=EngineConfig(), thumb=thumbs.__getitem__)
    steps = {out.index: planner.step(out.source, out.t) for out in timeline.frames()}
    # Frames 4 and 5 (drawing 4 and its repeat) are held as they were; the cut stays between 5 and 6.
    assert [steps[i].kind for i in (8, 9, 10, 11)] == ["copy", "static", "copy", "cut"]
    assert (steps[10].a, steps[11].a) == (5, 6)


# --- true time ------------------------------------------------------------------------------------


def test_between_places_outputs_at_true_time_on_factor_and_vfr_timelines():
    timeline = factor_timeline(frames_in=10, factor=3, fps_in=Fraction(24000, 1001))
    assert timeline.between(source=1, t=0.0, first=0, last=3) == pytest.approx(1 / 3)
    assert timeline.between(source=2, t=2 / 3, first=0, last=3) == pytest.approx(8 / 9)
    # Frames at 0, 40, 100 and 120 ms: a hold from 0 to 100 ms puts the frame at 40 ms at 0.4.
    vfr = fps_timeline(timestamps=[Fraction(0), Fraction(40, 1000), Fraction(100, 1000), Fraction(120, 1000)],
                       duration=Fraction(160, 1000), target_fps=Fraction(50))
    assert vfr.between(source=1, t=0.0, first=0, last=2) == pytest.approx(0.4)
    assert vfr.between(source=1, t=0.5, first=0, last=2) == pytest.approx(0.7)


@FAST
@given(first=st.integers(0, 50), run=st.integers(1, 4), factor=st.integers(2, 8))
def test_in_betweens_of_a_hold_are_evenly_spaced_and_strictly_increasing(first, run, factor):
    timeline = factor_timeline(frames_in=first + run + 2, factor=factor, fps_in=Fraction(25))
    last = first + run + 1
    places = [timeline.between(source=out.source, t=out.t, first=first, last=last)
              for out in timeline.frames(first * factor) if out.source < last]
    assert places[0] == 0.0
    steps = np.diff(places)
    assert np.all(steps > 0) and np.allclose(steps, 1 / (factor * (run + 1)))
