"""Linear cross-fade: ``(1 - t) * a + t * b``. A baseline, a test engine, and the last resort."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from midframe.engine.interpolators.base import FramePair, Preparing
from midframe.engine.settings import EngineConfig

__all__ = ["BlendInterpolator", "blend", "create"]


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """``(1 - t) * a + t * b``, rounded, in the dtype of ``a`` (uint8 or uint16)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"frames differ: {a.shape} {a.dtype} and {b.shape} {b.dtype}")
    return cv2.addWeighted(a, 1.0 - t, b, t, 0.0)


class BlendInterpolator:
    name = "blend"
    device = "cpu"
    batch_size: int | None = None
    threads = 0  # a cross-fade keeps no core busy
    uses_opencv = False
    backend: str | None = None

    def __init__(self) -> None:
        self.on_preparing: Preparing | None = None

    def load(self) -> None:
        pass

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        return [blend(pair.a, pair.b, pair.t) for pair in batch]

    def close(self) -> None:
        pass


def create(settings: EngineConfig, models_dir: Path) -> BlendInterpolator:
    return BlendInterpolator()
