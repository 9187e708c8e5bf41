"""engine.quality: high — RIFE's test-time augmentation with the real weights on real frames: the mean of
the passes, computed independently, exactly; symmetric in time; kept frames untouched; on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.rife import create
from midframe.engine.interpolators.rife.backends import importable
from midframe.engine.interpolators.rife.tta import Pass, mean_frames, passes
from tests.media import decode_rgb, psnr

BACKENDS = ["torch", pytest.param("openvino", marks=pytest.mark.skipif(not importable("openvino"),
                                                                       reason="openvino is not installed"))]


@pytest.fixture(scope="module", autouse=True)
def converter_threads(openvino_converter_started: None) -> None:
    """Before this module's first test (RIFE converts its graph for a frame size it has not seen)."""


@pytest.fixture(scope="module")
def pair(bigbuckbunny: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames 40, 41, 42 of bigbuckbunny (640x360), a 224x160 crop with real motion: a, truth, b."""
    frames = decode_rgb(bigbuckbunny, frames=43, size=(640, 360))
    crop = (slice(100, 260), slice(200, 424))
    return frames[40][crop].copy(), frames[41][crop].copy(), frames[42][crop].copy()


def engine(models: Path, backend: str, **settings):
    made = create(EngineConfig(name="rife", device="cpu", backend=backend, batch_size=2, **settings), models)
    made.load()
    return made


def mirrored(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame[:, ::-1])


def test_passes_and_the_exact_mean():
    assert passes(1) == (Pass(False, False),)
    assert passes(2) == (Pass(False, False), Pass(True, False))
    assert set(passes(4)) == {Pass(m, r) for m in (False, True) for r in (False, True)}
    with pytest.raises(ValueError):
        passes(3)
    frames = [np.array([[[0, 1, 255]]], np.uint8), np.array([[[1, 2, 254]]], np.uint8)]
    assert mean_frames(frames).tolist() == [[[1, 2, 255]]]  # halves round up
    deep = [np.array([[[65535]]], np.uint16)] * 3 + [np.array([[[65532]]], np.uint16)]
    out = mean_frames(deep)
    assert out.dtype == np.uint16 and out.tolist() == [[[65534]]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_way_is_the_mean_of_four_independent_passes(rife_weights: Path, pair, backend: str):
    a, truth, b = pair
    plain = engine(rife_weights, backend)
    high = engine(rife_weights, backend, quality="high")
    try:
        for t in (0.5, 0.25):
            # Each pass on its own, through the plain engine (distinct indices: nothing cached is shared).
            given = plain.interpolate([FramePair(100, a, b, t)])[0]
            flipped = mirrored(plain.interpolate([FramePair(200, mirrored(a), mirrored(b), t)])[0])
            backwards = plain.interpolate([FramePair(300, b, a, 1.0 - t)])[0]
            both = mirrored(plain.interpolate([FramePair(400, mirrored(b), mirrored(a), 1.0 - t)])[0])
            expected = mean_frames([given, flipped, backwards, both])
            made = high.interpolate([FramePair(0, a, b, t), FramePair(0, a, b, 0.0), FramePair(0, a, b, 1.0)])
            assert np.array_equal(made[0], expected), f"t={t}"
            assert not np.array_equal(made[0], given)  # the passes really differ
            # Kept frames are the frames themselves, bit for bit.
            assert np.array_equal(made[1], a) and np.array_equal(made[2], b)
            # Time-reversed, the pair gives the same frame: the four passes are the same four.
            again = high.interpolate([FramePair(7, b, a, 1.0 - t)])[0]
            assert np.array_equal(again, made[0])
        # And the mean is a better picture than the plain pass, judged against the real middle frame.
        assert psnr(high.interpolate([FramePair(0, a, b, 0.5)])[0], truth) > psnr(
            plain.interpolate([FramePair(100, a, b, 0.5)])[0], truth)
    finally:
        plain.close()
        high.close()


def test_two_way_is_the_mean_of_the_pair_and_its_mirror_image(rife_weights: Path, pair):
    a, _truth, b = pair
    plain = engine(rife_weights, "torch")
    two = engine(rife_weights, "torch", quality="high", tta=2)
    standard = engine(rife_weights, "torch", tta=2)  # tta counts only with quality high
    try:
        # A batch of two, against the passes run as batches of two (torch's sums differ by batch size).
        given = plain.interpolate([FramePair(100, a, b, 0.5), FramePair(101, b, a, 0.5)])
        flipped = [mirrored(frame) for frame in plain.interpolate(
            [FramePair(200, mirrored(a), mirrored(b), 0.5), FramePair(201, mirrored(b), mirrored(a), 0.5)])]
        made = two.interpolate([FramePair(0, a, b, 0.5), FramePair(1, b, a, 0.5)])
        assert all(np.array_equal(made[k], mean_frames([given[k], flipped[k]])) for k in (0, 1))
        given = plain.interpolate([FramePair(300, a, b, 0.5)])[0]
        assert np.array_equal(standard.interpolate([FramePair(0, a, b, 0.5)])[0], given)
        assert len(two.passes) == 2 and len(standard.passes) == 1
    finally:
        plain.close()
        two.close()
        standard.close()
