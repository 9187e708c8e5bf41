"""Test-time augmentation for RIFE (``engine.quality: high``): the mean of several passes of the network.

Each pass sees the pair transformed in a way that does not change the true in-between picture: mirrored
left-right (its result mirrored back), or time-reversed (the frames swapped and ``t`` -> ``1 - t``). The
network is not exactly symmetric under either, so its errors differ between passes and partly cancel in
the mean. Measured with the drop-frame protocol (``benchmarks/quality.py``): four passes +0.23 to +0.71 dB
on five windows of real footage, two passes (as given + mirrored) +0.11 to +0.22 dB.

The mean is taken of the passes' finished frames (integers in the source's dtype), rounded half up: a
pass rounds to the nearest level, so the extra rounding costs far less than the passes gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Pass", "mean_frames", "passes", "undo"]


@dataclass(frozen=True)
class Pass:
    mirrored: bool  # frames flipped left-right going in, the result flipped back
    reversed: bool  # frames swapped, t -> 1 - t


def passes(count: int) -> tuple[Pass, ...]:
    """The passes of a ``count``-way mean: 1 (plain), 2 (+ mirrored) or 4 (+ time-reversed, + both)."""
    if count == 1:
        return (Pass(False, False),)
    if count == 2:
        return (Pass(False, False), Pass(True, False))
    if count == 4:
        return (Pass(False, False), Pass(True, False), Pass(False, True), Pass(True, True))
    raise ValueError(f"test-time augmentation takes 1, 2 or 4 passes, not {count}")


def mirror(frame: np.ndarray) -> np.ndarray:
    """``frame`` flipped left-right, contiguous (the networks read memory in order)."""
    return np.ascontiguousarray(frame[:, ::-1])


def undo(frames: Sequence[np.ndarray], how: Pass) -> list[np.ndarray]:
    """A pass's results in the pair's own orientation (time reversal needs no undoing: ``t`` was mapped)."""
    return [mirror(frame) for frame in frames] if how.mirrored else list(frames)


def mean_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of integer frames of one shape and dtype, rounded half up, in that dtype (exact: no floats)."""
    first = frames[0]
    if len(frames) == 1:
        return first
    total = np.zeros(first.shape, dtype=np.int64 if first.dtype == np.uint16 else np.int32)
    for frame in frames:
        total += frame
    count = len(frames)
    return ((total + count // 2) // count).astype(first.dtype)
