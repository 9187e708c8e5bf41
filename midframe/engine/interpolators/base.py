"""The Interpolator protocol every engine implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class FramePair:
    """Make the frame at time ``t`` (0 < t < 1) between source frames ``index`` and ``index + 1``.

    ``a`` and ``b`` are HxWx3 RGB arrays, uint8 (8-bit sources) or uint16 (high bit depth), never
    modified by an interpolator. ``index`` lets an engine reuse per-frame work across pairs.
    """

    index: int
    a: np.ndarray
    b: np.ndarray
    t: float


# An engine whose first batch at a frame size does long one-time work (RIFE converting its graph for
# OpenVINO) may also have an attribute ``on_preparing: Callable[[str | None], None] | None``: the frame
# loop sets it, and the engine calls it with a sentence ("preparing RIFE for 1920x1080 (once per size,
# about 30 s)") when that work starts and with None when it is done, so a status can say so.
@runtime_checkable
class Interpolator(Protocol):
    name: str
    device: str

    def load(self) -> None:
        """Get ready to work (load weights, pick threads). Called once before the first batch."""

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        """One output frame per pair, same shape and dtype as the inputs."""

    def close(self) -> None:
        """Free memory and threads. Safe to call twice."""
