from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig
from midframe.engine.interpolators import FramePair, Interpolator, create_interpolator


def engine(name: str) -> Interpolator:
    interpolator = create_interpolator(EngineConfig(name=name), models_dir=Path("/nonexistent"))
    interpolator.load()
    return interpolator


def random_pair(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return rng.integers(0, top, shape, dtype=dtype, endpoint=True), rng.integers(0, top, shape, dtype=dtype, endpoint=True)


# --- blend ------------------------------------------------------------------------------------


def test_blend_is_the_weighted_mean():
    blend = engine("blend")
    assert isinstance(blend, Interpolator) and blend.name == "blend"
    a = np.zeros((4, 6, 3), np.uint8)
    b = np.full((4, 6, 3), 200, np.uint8)
    out = blend.interpolate([FramePair(0, a, b, 0.25), FramePair(0, a, b, 0.5)])
    assert [o.dtype for o in out] == [np.uint8, np.uint8]
    assert np.all(out[0] == 50) and np.all(out[1] == 100)
    blend.close()
    blend.close()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_blend_ends_and_depths(dtype):
    blend = engine("blend")
    a, b = random_pair((37, 53, 3), dtype)
    a_copy, b_copy = a.copy(), b.copy()
    first, last, middle = blend.interpolate([FramePair(3, a, b, 0.0), FramePair(3, a, b, 1.0), FramePair(3, a, b, 0.5)])
    assert np.array_equal(first, a) and np.array_equal(last, b)
    assert middle.dtype == dtype and middle.shape == a.shape
    expected = (a.astype(np.float64) + b) / 2
    assert np.abs(middle - expected).max() <= 0.5 + 1e-9
    assert np.array_equal(a, a_copy) and np.array_equal(b, b_copy)  # inputs untouched
