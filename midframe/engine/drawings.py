"""Drawings held for several frames: animation "on twos" and "on threes", found from frame differences.

Pure: the only input is ``change(j)``, how much frame ``j`` differs from frame ``j - 1`` (the scene
module's still score: the largest thumbnail pixel difference, 0..1), so tests can drive it with any
sequence. A *repeat* is a frame that differs from its predecessor by no more than compression noise
explains. A *hold* is a run of up to ``max_run`` repeats after a drawing such that:

- it is clear: the change into the drawing and out of the run are each at least ``CLEAR_RATIO``
  times the largest difference inside it. Slow real motion changes by about as much on every frame,
  so a few slow frames that happen to fall under the repeat limit are not a hold;
- it recurs: another clear run starts within ``max_run + 2`` frames. Animation on twos or threes holds
  drawing after drawing; a lone duplicate (a 24 -> 25 fps conversion repeats one frame a second, a
  recorder drops one) is left as it is, so live footage keeps every frame it had.

A longer run is a pause and stays still. Every answer for frame ``i`` reads ``change`` only within
``context(max_run)`` frames of ``i``: a farm segment or a resumed job that has those frames decides
exactly what a whole run decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CLEAR_RATIO", "REPEAT_SLACK", "Drawings", "context"]

# A repeat may differ from its predecessor by up to this many times ``static_threshold``: x264 at
# CRF 28 leaves up to 0.016 between a frame and its duplicate at 1280x720, where the slowest real
# motion of Big Buck Bunny changes by 0.021 (the run tests below sort those out).
REPEAT_SLACK = 2.5
# The drawings around a hold change at least this many times more than the hold's own frames do.
CLEAR_RATIO = 3.0


def _recur(max_run: int) -> int:
    return max_run + 2


def context(max_run: int) -> int:
    """How many frames either side of frame ``i`` any decision about ``i`` (or the cut test of the
    drawings around it, which looks at the holds next to its own) may read."""
    return 4 * max_run + 6


@dataclass(frozen=True)
class Drawings:
    """Holds in a video of frames ``0 .. last``; ``change(j)`` is defined for ``1 <= j <= last``."""

    change: Callable[[int], float]
    last: int
    repeat_limit: float  # a repeat differs from its predecessor by at most this
    max_run: int

    @classmethod
    def of(cls, change: Callable[[int], float], *, last: int, static_threshold: float, max_run: int) -> Drawings:
        return cls(change=change, last=last, repeat_limit=REPEAT_SLACK * static_threshold, max_run=max_run)

    def _repeat(self, j: int) -> bool:
        return 1 <= j <= self.last and self.change(j) <= self.repeat_limit

    def _run(self, i: int) -> tuple[int, int] | None:
        """The run of repeats ``a .. b`` that frame ``i`` is in or is the drawing of, if it is short
        and has a next drawing; else None."""
        if self._repeat(i):
            a = i
            while self._repeat(a - 1):
                a -= 1
                if i - a + 1 > self.max_run:
                    return None
        elif self._repeat(i + 1):
            a = i + 1
        else:
            return None
        b = a
        while self._repeat(b + 1):
            b += 1
            if b - a + 1 > self.max_run:
                return None
        if b + 1 > self.last:
            return None  # the video ends on it: nothing to move towards
        return a, b

    def _clear(self, a: int, b: int) -> bool:
        inside = max(self.change(j) for j in range(a, b + 1))
        into = self.change(a - 1) if a - 1 >= 1 else math.inf
        return inside * CLEAR_RATIO <= min(into, self.change(b + 1))

    def _clear_run_from(self, a: int) -> bool:
        """Whether a clear short run starts exactly at frame ``a``."""
        if not self._repeat(a) or self._repeat(a - 1):
            return False
        run = self._run(a)
        return run is not None and run[0] == a and self._clear(*run)

    def hold(self, i: int) -> tuple[int, int] | None:
        """``(drawing, next_drawing)`` when frame ``i`` is a held drawing or one of its repeats."""
        run = self._run(i)
        if run is None or not self._clear(*run):
            return None
        a = run[0]
        reach = _recur(self.max_run)
        if not any(self._clear_run_from(other) for other in range(max(1, a - reach), min(self.last, a + reach) + 1)
                   if other != a):
            return None
        return a - 1, run[1] + 1
