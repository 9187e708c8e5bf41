"""Frame timing from packet timestamps: exact durations, constant or variable rate, the nominal rate. Pure.

Three kinds of video come out of ``timing``:

- constant rate: evenly spaced timestamps (to the container's rounding); the rate is exact;
- constant rate with gaps: every timestamp sits on the grid of a nominal rate (25, 30000/1001...)
  but some slots are empty (dropped frames) or shared (duplicated timestamps). ``vfr`` is True, so
  the timeline follows the timestamps (audio stays in sync across a gap), and ``nominal_fps`` is
  that rate, so ``--factor 2`` gives exactly twice it;
- true variable rate: no such grid; ``nominal_fps`` is None and the average rate stands in.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

# A nominal grid explains the timestamps when each is within this much of its slot...
GRID_TOLERANCE = Fraction(1, 10)  # of a frame, beyond the container's rounding
# ...at least this share of the slots up to the last frame hold one...
MIN_GRID_FILL = Fraction(2, 3)
# ...and at least this share of the intervals are exactly one slot.
MIN_SINGLE_STEPS = Fraction(1, 2)


def snap_rate(value: Fraction) -> Fraction:
    """A measured frame rate turned into the rate people mean (25, 24000/1001, ...)."""
    for candidate in (Fraction(round(value)), Fraction(round(value * Fraction(1001, 1000)) * 1000, 1001)):
        if candidate > 0 and abs(candidate - value) / value < Fraction(1, 2000):
            return candidate
    return value.limit_denominator(1001)


# A declared rate this close to a whole or NTSC rate is that rate, written with smaller terms.
DECLARED_SNAP = Fraction(1, 100_000)


def exact_declared(value: Fraction | None) -> Fraction | None:
    """The container's declared rate, undoing a demuxer's approximation: ffmpeg 5.1 reads a Matroska
    DefaultDuration as a fraction with terms up to 30000, so 48000/1001 comes back as 7001/146 and
    60000/1001 as 19001/317 (within 2e-7 of the rate meant); any other rate stays as declared."""
    if value is None or value <= 0:
        return value
    for candidate in (Fraction(round(value)), Fraction(round(value * Fraction(1001, 1000)) * 1000, 1001)):
        if candidate > 0 and abs(candidate - value) / value < DECLARED_SNAP:
            return candidate
    return value


def is_vfr(pts: Sequence[int], time_base: Fraction) -> bool:
    """True when frame intervals vary by more than container rounding.

    Rounding is a tick and a half (or 2 %), but never a quarter of a frame or more: where a tick is
    a whole frame (AVI), a single interval of two ticks is a dropped frame, not rounding.
    """
    if len(pts) < 3:
        return False
    deltas = [b - a for a, b in zip(pts, pts[1:])]
    mean = sum(deltas) / len(deltas)
    tolerance = min(max(1.5, mean * 0.02), mean / 4)
    return any(abs(delta - mean) > tolerance for delta in deltas)


def grid_fits(pts: Sequence[int], time_base: Fraction, rate: Fraction) -> bool:
    """Whether every timestamp (ticks from the first frame) sits on the grid of ``rate``, filled enough."""
    if rate <= 0 or len(pts) < 2:
        return False
    frame_ticks = 1 / (rate * time_base)
    # Where a frame is not a whole number of ticks, muxers round each timestamp by up to a tick.
    tolerance = frame_ticks * GRID_TOLERANCE + (0 if frame_ticks.denominator == 1 else 1)
    if tolerance >= frame_ticks / 2:
        return False  # the time base is too coarse to tell slots apart
    slots: list[int] = []
    for stamp in pts:
        slot = round(stamp / frame_ticks)
        if abs(stamp - slot * frame_ticks) > tolerance or (slots and slot < slots[-1]):
            return False
        slots.append(slot)
    steps = [b - a for a, b in zip(slots, slots[1:])]
    filled = len(set(slots)) / Fraction(slots[-1] - slots[0] + 1)
    single = sum(1 for step in steps if step == 1) / Fraction(len(steps))
    return filled >= MIN_GRID_FILL and single >= MIN_SINGLE_STEPS


def typical_rate(pts: Sequence[int], time_base: Fraction) -> Fraction | None:
    """The rate of the usual interval: the mean of the intervals within rounding of the median one
    (a mean, as a millisecond time base rounds 41.708 ms to 41 or 42), snapped to what people mean."""
    deltas = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    if not deltas:
        return None
    median = statistics.median_low(deltas)
    usual = [delta for delta in deltas if abs(delta - median) <= max(1.5, median * 0.02)]
    return snap_rate(1 / (Fraction(sum(usual), len(usual)) * time_base))


def nominal_rate(pts: Sequence[int], time_base: Fraction, *, declared: Fraction | None) -> Fraction | None:
    """The rate whose grid the timestamps sit on with gaps; None for true variable-rate video.

    Candidates: the container's declared rate (ffprobe's ``r_frame_rate``), then ``typical_rate``.
    """
    if len(pts) < 3:
        return None
    candidates = [declared, typical_rate(pts, time_base)]
    for rate in candidates:
        if rate is not None and 0 < rate <= 1000 and grid_fits(pts, time_base, rate):
            return rate
    return None


@dataclass(frozen=True)
class Timing:
    pts: tuple[int, ...]  # ticks from the first frame, strictly increasing
    duration: Fraction  # seconds from the first frame's start to the last frame's end
    vfr: bool
    r_frame_rate: Fraction  # the constant rate (meaningful where not vfr)
    avg_frame_rate: Fraction
    nominal_fps: Fraction | None  # vfr on a grid with gaps: that grid's rate


def timing(
    *,
    pts: Sequence[int],
    last_duration: int,
    time_base: Fraction,
    declared_rate: Fraction | None,
) -> Timing:
    """The timing of a video stream from its frames' presentation times (sorted, absolute ticks) and the
    last frame's packet duration (0 when unknown)."""
    declared_rate = exact_declared(declared_rate)
    first = pts[0]
    relative = [stamp - first for stamp in pts]
    for i in range(1, len(relative)):  # broken files repeat timestamps; keep them strictly increasing
        if relative[i] <= relative[i - 1]:
            relative[i] = relative[i - 1] + 1
    deltas = [b - a for a, b in zip(relative, relative[1:])]
    if last_duration <= 0:
        last_duration = round(statistics.median(deltas)) if deltas else 0
    if last_duration <= 0:
        last_duration = max(1, round(1 / ((declared_rate or Fraction(25)) * time_base)))
    duration = (relative[-1] + last_duration) * time_base
    count = len(relative)
    vfr = is_vfr(relative, time_base)
    avg = Fraction(count) / duration
    r_rate = declared_rate
    if r_rate is None or r_rate > 1000:
        r_rate = typical_rate(relative, time_base) or avg
    if not vfr and abs(r_rate - avg) / avg > Fraction(1, 100):
        r_rate = snap_rate(avg)
    nominal = nominal_rate(relative, time_base, declared=declared_rate) if vfr else None
    return Timing(pts=tuple(relative), duration=duration, vfr=vfr, r_frame_rate=r_rate, avg_frame_rate=avg,
                  nominal_fps=nominal)
