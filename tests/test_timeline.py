from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from midframe.engine.timeline import OutputFrame, factor_timeline, fps_timeline

ODD_RATES = [
    Fraction(24000, 1001),
    Fraction(30000, 1001),
    Fraction(60000, 1001),
    Fraction(25),
    Fraction(25, 2),
    Fraction(24),
    Fraction(50),
    Fraction(120),
]
rates = st.one_of(st.sampled_from(ODD_RATES), st.integers(1, 240).map(Fraction))
lengths = st.one_of(st.integers(1, 3), st.integers(1, 5000))
FAST = settings(max_examples=150, deadline=None)


def cfr_stamps(frames: int, fps: Fraction) -> list[Fraction]:
    return [Fraction(i) / fps for i in range(frames)]


def time_of(stamps: list[Fraction], duration: Fraction, frame: OutputFrame) -> float:
    if frame.t == 0.0:
        return float(stamps[frame.source])
    end = stamps[frame.source + 1] if frame.source + 1 < len(stamps) else duration
    return float(stamps[frame.source] + Fraction(frame.t) * (end - stamps[frame.source]))


# --- --factor N -------------------------------------------------------------------------------


@FAST
@given(frames_in=lengths, factor=st.integers(2, 16), fps=rates)
def test_factor_counts_duration_and_kept_frames(frames_in, factor, fps):
    tl = factor_timeline(frames_in=frames_in, factor=factor, fps_in=fps)
    assert tl.frames_in == frames_in
    assert tl.frames_out == factor * frames_in
    assert tl.fps_out == fps * factor
    assert isinstance(tl.fps_out, Fraction)
    assert tl.duration_out == Fraction(frames_in) / fps  # exactly the source duration
    out = list(tl.frames())
    assert [f.index for f in out] == list(range(tl.frames_out))
    for k in range(frames_in):
        kept = out[factor * k]
        assert (kept.source, kept.t) == (k, 0.0)
    for f in out:
        assert 0 <= f.source < frames_in
        assert 0.0 <= f.t < 1.0
        if f.t > 0.0:
            assert f.source + 1 < frames_in
            assert f.t == (f.index % factor) / factor
    # The last source frame is held factor-1 more times.
    assert all((f.source, f.t) == (frames_in - 1, 0.0) for f in out[-factor:])


@FAST
@given(frames_in=st.integers(2, 400), factor=st.integers(2, 16), fps=rates)
def test_factor_output_times_are_exact(frames_in, factor, fps):
    tl = factor_timeline(frames_in=frames_in, factor=factor, fps_in=fps)
    for f in tl.frames():
        if f.index < factor * (frames_in - 1):
            step = f.index % factor
            assert f.source == f.index // factor
            assert f.t == step / factor
            # Source time of (source, t) is exactly the output frame's time index / fps_out.
            assert Fraction(f.source) / fps + Fraction(step, factor) / fps == Fraction(f.index) / tl.fps_out


def test_factor_single_frame_is_held():
    tl = factor_timeline(frames_in=1, factor=4, fps_in=Fraction(24000, 1001))
    assert [(f.source, f.t) for f in tl.frames()] == [(0, 0.0)] * 4


def test_factor_frames_from_start_and_bounds():
    tl = factor_timeline(frames_in=10, factor=3, fps_in=Fraction(25))
    assert [f.index for f in tl.frames(25)] == [25, 26, 27, 28, 29]
    assert list(tl.frames(30)) == []
    assert len(tl) == 30
    assert tl.frame(4) == OutputFrame(index=4, source=1, t=1 / 3)
    with pytest.raises(IndexError):
        tl.frame(30)
    with pytest.raises(IndexError):
        tl.frame(-1)


@pytest.mark.parametrize("kwargs", [
    dict(frames_in=0, factor=2, fps_in=Fraction(25)),
    dict(frames_in=5, factor=0, fps_in=Fraction(25)),
    dict(frames_in=5, factor=2, fps_in=Fraction(0)),
])
def test_factor_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        factor_timeline(**kwargs)


# --- --fps F ----------------------------------------------------------------------------------


def check_fps_timeline(stamps: list[Fraction], duration: Fraction, target: Fraction) -> None:
    tl = fps_timeline(timestamps=stamps, duration=duration, target_fps=target)
    assert tl.frames_in == len(stamps)
    assert tl.fps_out == target
    # A/V drift over the whole file: under one output frame (in fact at most half of one).
    assert abs(Fraction(tl.frames_out) / target - duration) <= Fraction(1, 2) / target or tl.frames_out == 1
    assert abs(tl.duration_out - duration) < 1 / target or tl.frames_out == 1
    widest = float(max((b - a for a, b in zip(stamps, stamps[1:])), default=duration))
    everything = list(tl.frames())
    assert [f.index for f in everything] == list(range(tl.frames_out))
    # frames() walks the timeline; frame(i) looks one up: they agree.
    sample = sorted({*range(min(300, tl.frames_out)), *range(max(0, tl.frames_out - 300), tl.frames_out),
                     *range(0, tl.frames_out, max(1, tl.frames_out // 300))})
    assert [tl.frame(i) for i in sample] == [everything[i] for i in sample]
    assert list(tl.frames(sample[len(sample) // 2])) == everything[sample[len(sample) // 2]:]
    previous = (0, 0.0)
    for f in everything:
        assert (f.source, f.t) >= previous  # never steps back in source time
        previous = (f.source, f.t)
    for f in (everything[i] for i in sample):
        when = Fraction(f.index) / target
        assert 0 <= f.source < len(stamps)
        assert 0.0 <= f.t < 1.0
        if f.t > 0.0:
            assert f.source + 1 < len(stamps)
            assert stamps[f.source] < when < stamps[f.source + 1]
            span = float(stamps[f.source + 1] - stamps[f.source])
            assert time_of(stamps, duration, f) == pytest.approx(float(when), abs=1e-9 * max(span, 1.0))
        elif f.source < len(stamps) - 1:
            # Shown as a copy: it sits on that frame's timestamp (to within the snap) ...
            assert abs(float(when - stamps[f.source])) <= 1e-9 * widest + 1e-12
        else:
            # ... or it is past the last frame, which is held.
            assert when >= stamps[-1] - Fraction(1, 10**9)


@FAST
@given(frames_in=lengths, fps_in=rates, target=rates)
def test_fps_from_constant_rate(frames_in, fps_in, target):
    assume(frames_in / fps_in * target < 50_000)
    stamps = cfr_stamps(frames_in, fps_in)
    check_fps_timeline(stamps, Fraction(frames_in) / fps_in, target)


@FAST
@given(
    steps=st.lists(st.integers(1, 5000), min_size=0, max_size=300),
    tick=st.sampled_from([Fraction(1, 1000), Fraction(1, 90000), Fraction(1001, 30000), Fraction(1, 48000)]),
    last=st.integers(1, 5000),
    target=rates,
)
def test_fps_from_variable_rate(steps, tick, last, target):
    stamps = [Fraction(0)]
    for step in steps:
        stamps.append(stamps[-1] + step * tick)
    duration = stamps[-1] + last * tick
    assume(duration * target < 50_000)  # keep each example's output short enough to check every frame
    check_fps_timeline(stamps, duration, target)


def test_fps_23976_to_60_over_two_hours():
    fps_in = Fraction(24000, 1001)
    frames_in = 172_627  # 2 h at 23.976
    duration = Fraction(frames_in) / fps_in
    tl = fps_timeline(timestamps=cfr_stamps(frames_in, fps_in), duration=duration, target_fps=Fraction(60))
    assert abs(tl.duration_out - duration) < Fraction(1, 60)
    # The very end still lines up: the last output frame shows a time within the last source frame.
    last = tl.frame(tl.frames_out - 1)
    assert last.source == frames_in - 1 or last.source == frames_in - 2


def test_fps_same_rate_copies_every_frame():
    fps = Fraction(30000, 1001)
    tl = fps_timeline(timestamps=cfr_stamps(100, fps), duration=Fraction(100) / fps, target_fps=fps)
    assert tl.frames_out == 100
    assert [(f.source, f.t) for f in tl.frames()] == [(i, 0.0) for i in range(100)]


def test_fps_doubling_matches_factor_two():
    fps = Fraction(24000, 1001)
    n = 50
    by_fps = fps_timeline(timestamps=cfr_stamps(n, fps), duration=Fraction(n) / fps, target_fps=2 * fps)
    by_factor = factor_timeline(frames_in=n, factor=2, fps_in=fps)
    assert list(by_fps.frames()) == list(by_factor.frames())


def test_fps_25_to_60_pattern():
    tl = fps_timeline(timestamps=cfr_stamps(25, Fraction(25)), duration=Fraction(1), target_fps=Fraction(60))
    assert tl.frames_out == 60
    f = tl.frame(1)  # 1/60 s = 0.4167 of the way from frame 0 to frame 1
    assert (f.source, f.t) == (0, pytest.approx(25 / 60))
    assert tl.frame(12) == OutputFrame(index=12, source=5, t=0.0)  # 12/60 = 5/25 exactly


def test_fps_shifts_a_nonzero_start_and_repairs_a_missing_duration():
    stamps = [Fraction(10), Fraction(10) + Fraction(1, 25), Fraction(10) + Fraction(2, 25)]
    tl = fps_timeline(timestamps=stamps, duration=Fraction(10) + Fraction(3, 25), target_fps=Fraction(50))
    assert tl.frames_out == 6
    assert tl.frame(1).t == pytest.approx(0.5)
    repaired = fps_timeline(timestamps=stamps, duration=Fraction(0), target_fps=Fraction(50))
    assert repaired.frames_out == 6


def test_fps_single_frame():
    tl = fps_timeline(timestamps=[Fraction(0)], duration=Fraction(1, 25), target_fps=Fraction(60))
    assert tl.frames_out == 2
    assert [(f.source, f.t) for f in tl.frames()] == [(0, 0.0), (0, 0.0)]
    tiny = fps_timeline(timestamps=[Fraction(0)], duration=Fraction(1, 1000), target_fps=Fraction(24))
    assert tiny.frames_out == 1


def test_fps_rejects_nonsense():
    with pytest.raises(ValueError):
        fps_timeline(timestamps=[], duration=Fraction(1), target_fps=Fraction(25))
    with pytest.raises(ValueError):
        fps_timeline(timestamps=[Fraction(0), Fraction(0)], duration=Fraction(1), target_fps=Fraction(25))
    with pytest.raises(ValueError):
        fps_timeline(timestamps=[Fraction(0)], duration=Fraction(1), target_fps=Fraction(0))


def test_fps_snaps_to_a_frame_within_a_nanosecond():
    # Output 1 at 1/3 s, a picosecond before or after source frame 1: that frame, copied.
    stamps = [Fraction(0), Fraction(1, 3) + Fraction(1, 10**12), Fraction(1)]
    tl = fps_timeline(timestamps=stamps, duration=Fraction(2), target_fps=Fraction(3))
    assert tl.frame(1) == OutputFrame(index=1, source=1, t=0.0)
    stamps = [Fraction(0), Fraction(1, 3) - Fraction(1, 10**12), Fraction(1)]
    tl = fps_timeline(timestamps=stamps, duration=Fraction(2), target_fps=Fraction(3))
    assert tl.frame(1) == OutputFrame(index=1, source=1, t=0.0)


def test_a_declared_rate_a_demuxer_wrote_with_small_terms_is_read_as_meant():
    from midframe.engine.rates import exact_declared

    # ffmpeg 5.1's Matroska demuxer: DefaultDuration as a fraction with terms up to 30000.
    assert exact_declared(Fraction(7001, 146)) == Fraction(48000, 1001)
    assert exact_declared(Fraction(19001, 317)) == Fraction(60000, 1001)
    for kept in (Fraction(25), Fraction(24000, 1001), Fraction(25, 2), Fraction(1000, 41), Fraction(2999, 100)):
        assert exact_declared(kept) == kept
    assert exact_declared(Fraction(2997, 100)) == Fraction(30000, 1001)  # 29.97 means NTSC, as in the config
    assert exact_declared(None) is None
