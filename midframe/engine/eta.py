"""The speed and time left of a conversion, from its steady part.

The first batch carries one-time work (loading the model, converting its graph for the frame size,
CUDA's compile): a rate counted from the start would promise a 26-minute job for an 8-minute one. So
the rate is measured from the end of the first batch that made frames (before a second such sample
exists, the overall rate is the only measure). Time spent paused counts for nothing, and with no new
frames nothing moves: the time left is frozen while a job is paused. Pure: the caller passes ``now``.
"""

from __future__ import annotations


class SteadyRate:
    """Samples of (frames made so far, ``now``) in; frames per second and seconds left out."""

    def __init__(self, *, frames: int, now: float) -> None:
        self._paused_s = 0.0
        self._paused_at: float | None = None
        self._first = (frames, 0.0)  # (frames, active seconds)
        self._steady: tuple[int, float] | None = None  # where the steady part starts
        self._last = self._first
        self._started = now

    def active_s(self, *, now: float) -> float:
        """Seconds since the start, less the time paused."""
        end = self._paused_at if self._paused_at is not None else now
        return max(0.0, end - self._started - self._paused_s)

    def pause(self, *, now: float) -> None:
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, *, now: float) -> None:
        if self._paused_at is not None:
            self._paused_s += now - self._paused_at
            self._paused_at = None

    def rewarm(self) -> None:
        """One-time work starts again (a model prepared for a new frame size): what comes next is
        not the steady rate until a batch after it is done."""
        self._first, self._steady = self._last, None

    def sample(self, frames: int, *, now: float) -> None:
        self._last = (frames, self.active_s(now=now))
        if self._steady is None and frames > self._first[0]:
            self._steady = self._last

    @property
    def frames(self) -> int:
        return self._last[0]

    def fps(self) -> float:
        frames, seconds = self._last
        if self._steady is not None and frames > self._steady[0] and seconds > self._steady[1]:
            return (frames - self._steady[0]) / (seconds - self._steady[1])
        if frames > self._first[0] and seconds > self._first[1]:
            return (frames - self._first[0]) / (seconds - self._first[1])
        return 0.0

    def eta_s(self, total: int) -> float | None:
        """Seconds left to make ``total`` frames; None while no rate is known."""
        remaining = total - self._last[0]
        if remaining <= 0:
            return 0.0
        fps = self.fps()
        return remaining / fps if fps > 0 else None
