"""Which source frames, and where between them, each output frame comes from.

Pure and exact: times are ``Fraction`` seconds, so 23.976 (24000/1001) and variable-frame-rate
sources map without accumulated rounding. Two kinds of timeline:

- ``factor_timeline``: exactly ``factor`` output frames per source frame at ``factor`` times the rate;
  output ``factor*k`` is source ``k`` and the last source frame is held ``factor-1`` more times, so the
  output lasts exactly as long as the source.
- ``fps_timeline``: a constant output rate ``F``; output ``j`` shows the source at time ``j/F``, and the
  number of output frames is ``round(duration*F)``, so the end differs from the source's by at most
  half an output frame (audio stays in sync over any length).

``slow_motion`` shows another timeline's frames ``factor`` times slower: the same output frames at
``fps_out / factor``, so ``factor_timeline(factor=N)`` slowed by N keeps the source's rate and lasts
exactly N times as long.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["OutputFrame", "Timeline", "FactorTimeline", "FpsTimeline", "SlowMotion", "factor_timeline", "fps_timeline",
           "slow_motion"]

# |t| below this counts as exactly the source frame (copied, never interpolated).
SNAP = 1e-9


@dataclass(frozen=True)
class OutputFrame:
    index: int  # output frame number, 0-based
    source: int  # source frame i
    t: float  # 0.0 = exactly source frame i (copy it); 0 < t < 1 = between i and i + 1


@dataclass(frozen=True)
class Timeline:
    """``frames_out`` output frames at the constant rate ``fps_out``, made from ``frames_in`` sources."""

    frames_in: int
    frames_out: int
    fps_out: Fraction

    @property
    def duration_out(self) -> Fraction:
        """Length of the output in seconds: ``frames_out / fps_out``."""
        return Fraction(self.frames_out) / self.fps_out

    def frame(self, index: int) -> OutputFrame:
        if not 0 <= index < self.frames_out:
            raise IndexError(f"output frame {index} is outside 0..{self.frames_out - 1}")
        source, t = self._locate(index)
        return OutputFrame(index=index, source=source, t=t)

    def frames(self, start: int = 0) -> Iterator[OutputFrame]:
        """Output frames ``start .. frames_out - 1`` in order."""
        for index in range(max(start, 0), self.frames_out):
            yield self.frame(index)

    def __len__(self) -> int:
        return self.frames_out

    def _locate(self, index: int) -> tuple[int, float]:
        raise NotImplementedError

    def source_seconds(self, source: int) -> Fraction:
        """When source frame ``source`` is shown, from the first frame's time."""
        raise NotImplementedError

    def between(self, *, source: int, t: float, first: int, last: int) -> float:
        """Where the moment of output position (``source``, ``t``) lies between source frames
        ``first`` and ``last`` (0..1), in true time: a drawing held for two frames puts its in-betweens
        at even steps across both, whatever the spacing of the frames in between."""
        start, end = self.source_seconds(first), self.source_seconds(last)
        here = self.source_seconds(source)
        if t:
            here += Fraction(t) * (self.source_seconds(source + 1) - here)
        return float((here - start) / (end - start))


@dataclass(frozen=True)
class FactorTimeline(Timeline):
    factor: int = 2

    def source_seconds(self, source: int) -> Fraction:
        return Fraction(source * self.factor) / self.fps_out

    def _locate(self, index: int) -> tuple[int, float]:
        source, step = divmod(index, self.factor)
        if source >= self.frames_in - 1:
            return self.frames_in - 1, 0.0
        return source, step / self.factor


@dataclass(frozen=True)
class FpsTimeline(Timeline):
    timestamps: tuple[Fraction, ...] = field(default=(), repr=False)
    duration: Fraction = Fraction(0)
    # The same timestamps as integer ticks of 1/tick_rate seconds, with tick_rate a multiple of
    # fps_out's numerator so that every output time is a whole number of ticks too.
    _ticks: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _tick_rate: int = field(default=1, repr=False, compare=False)

    def source_time(self, index: int) -> Fraction:
        """The exact source time output frame ``index`` shows."""
        return Fraction(index) / self.fps_out

    def source_seconds(self, source: int) -> Fraction:
        return self.timestamps[source]

    def _output_tick(self, index: int) -> int:
        return index * self.fps_out.denominator * (self._tick_rate // self.fps_out.numerator)

    def _locate(self, index: int) -> tuple[int, float]:
        when = self._output_tick(index)
        source = max(bisect.bisect_right(self._ticks, when) - 1, 0)
        return self._place(source, when)

    def _place(self, source: int, when: int) -> tuple[int, float]:
        ticks = self._ticks
        if source >= len(ticks) - 1:
            return len(ticks) - 1, 0.0
        t = (when - ticks[source]) / (ticks[source + 1] - ticks[source])  # int/int: correctly rounded
        if t < SNAP:
            return source, 0.0
        if t > 1.0 - SNAP:
            # A nanosecond-fraction before the next frame: that frame itself, copied, not interpolated.
            return source + 1, 0.0
        return source, t

    def frames(self, start: int = 0) -> Iterator[OutputFrame]:
        ticks = self._ticks
        start = max(start, 0)
        source = max(bisect.bisect_right(ticks, self._output_tick(start)) - 1, 0)
        for index in range(start, self.frames_out):
            when = self._output_tick(index)
            while source + 1 < len(ticks) and ticks[source + 1] <= when:
                source += 1
            found, t = self._place(source, when)
            yield OutputFrame(index=index, source=found, t=t)


def factor_timeline(*, frames_in: int, factor: int, fps_in: Fraction) -> Timeline:
    """``factor * frames_in`` outputs at ``fps_in * factor``; output ``factor*k`` is source ``k``."""
    if frames_in < 1:
        raise ValueError(f"frames_in = {frames_in}: a video has at least one frame")
    if factor < 1:
        raise ValueError(f"factor = {factor}: must be at least 1")
    fps_in = Fraction(fps_in)
    if fps_in <= 0:
        raise ValueError(f"fps_in = {fps_in}: must be positive")
    return FactorTimeline(
        frames_in=frames_in, frames_out=frames_in * factor, fps_out=fps_in * factor, factor=factor
    )


def fps_timeline(*, timestamps: Sequence[Fraction], duration: Fraction, target_fps: Fraction) -> Timeline:
    """Output frame ``j`` at ``j / target_fps`` on the source timeline.

    ``timestamps`` are the presentation times of the source frames in seconds, strictly increasing;
    ``duration`` is the end of the last frame (when it is not after the last timestamp, the last frame
    gets the mean frame length). Both are measured from the first frame: when the first timestamp is
    not 0 everything is shifted so that it is.
    """
    stamps = [Fraction(ts) for ts in timestamps]
    if not stamps:
        raise ValueError("timestamps: a video has at least one frame")
    target_fps = Fraction(target_fps)
    if target_fps <= 0:
        raise ValueError(f"target_fps = {target_fps}: must be positive")
    origin = stamps[0]
    stamps = [ts - origin for ts in stamps]
    duration = Fraction(duration) - origin
    for i, (earlier, later) in enumerate(zip(stamps, stamps[1:])):
        if later <= earlier:
            raise ValueError(f"timestamps must increase strictly: frame {i + 1} is at {later} after {earlier}")
    if duration <= stamps[-1]:
        # No usable end time (a probe that reports none): give the last frame the mean frame length.
        step = stamps[-1] / (len(stamps) - 1) if len(stamps) > 1 else 1 / target_fps
        duration = stamps[-1] + step
    frames_out = max(1, round(duration * target_fps))
    tick_rate = math.lcm(target_fps.numerator, *(ts.denominator for ts in stamps))
    return FpsTimeline(
        frames_in=len(stamps),
        frames_out=frames_out,
        fps_out=target_fps,
        timestamps=tuple(stamps),
        duration=duration,
        _ticks=tuple(int(ts * tick_rate) for ts in stamps),
        _tick_rate=tick_rate,
    )


@dataclass(frozen=True)
class SlowMotion(Timeline):
    """``inner``'s output frames, each shown ``factor`` times as long."""

    inner: Timeline | None = None
    factor: int = 1

    def _locate(self, index: int) -> tuple[int, float]:
        assert self.inner is not None
        return self.inner._locate(index)

    def source_seconds(self, source: int) -> Fraction:
        assert self.inner is not None
        return self.inner.source_seconds(source)

    def frames(self, start: int = 0) -> Iterator[OutputFrame]:
        assert self.inner is not None
        return self.inner.frames(start)


def slow_motion(timeline: Timeline, *, factor: int) -> Timeline:
    """``timeline`` played ``factor`` times slower (``factor`` 1: ``timeline`` itself)."""
    if factor < 1:
        raise ValueError(f"factor = {factor}: must be at least 1")
    if factor == 1:
        return timeline
    return SlowMotion(frames_in=timeline.frames_in, frames_out=timeline.frames_out,
                      fps_out=timeline.fps_out / factor, inner=timeline, factor=factor)
