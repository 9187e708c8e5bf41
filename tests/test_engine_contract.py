"""The Interpolator contract, run over every engine the registry holds (``ENGINES``), each built as a job
builds it (rife and auto with the real weights): one frame per pair, in order, in the inputs' shape and
dtype, inputs untouched, outputs of its own, a reused frame index with new pictures never served from a
cache, ``close()`` safe twice, and the capabilities each spec declares kept. Frames are 64x48 crops of
real footage, so the whole file takes seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig
from midframe.engine.interpolators import (
    ENGINES,
    FramePair,
    Interpolator,
    create_interpolator,
    weights_providers,
)
from midframe.engine.interpolators.auto import AutoInterpolator
from midframe.errors import WeightsError
from tests.media import decode_rgb

SIZE = (64, 48)
# Two places in the clip that look nothing alike (sky and grass), so a frame's pair is never in doubt.
PLACES = ("crop=64:48:600:40", "crop=64:48:200:600")
DEPTHS = [np.uint8, np.uint16]


@pytest.fixture(scope="module", autouse=True)
def converter_threads(openvino_converter_started: None) -> None:
    """Before this module's first test (RIFE converts its graph for a frame size it has not seen)."""


@pytest.fixture(scope="module")
def crops(bigbuckbunny: Path) -> list[np.ndarray]:
    """Three consecutive frames (8-bit) of each place, one N x 48 x 64 x 3 array per place."""
    return [decode_rgb(bigbuckbunny, size=SIZE, vf=place, frames=3) for place in PLACES]


def at_depth(frame: np.ndarray, dtype: type) -> np.ndarray:
    return frame if dtype is np.uint8 else frame.astype(np.uint16) * 257  # full 16-bit range


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest, rife_weights: Path) -> Iterator[Interpolator]:
    built = create_interpolator(EngineConfig(name=request.param, device="cpu"), models_dir=rife_weights)
    built.load()
    yield built
    built.close()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.mark.parametrize("dtype", DEPTHS)
def test_one_frame_per_pair_in_order_shape_and_dtype_with_the_inputs_untouched(
        engine: Interpolator, crops: list[np.ndarray], dtype: type) -> None:
    sky, grass = ([at_depth(frame, dtype) for frame in place] for place in crops)
    batch = [FramePair(0, sky[0], sky[1], 0.5), FramePair(10, grass[0], grass[1], 0.25),
             FramePair(1, sky[1], sky[2], 0.75), FramePair(11, grass[1], grass[2], 0.5)]
    before = [(pair.a.copy(), pair.b.copy()) for pair in batch]
    made = engine.interpolate(batch)
    assert len(made) == len(batch)
    for pair, frame, (a, b) in zip(batch, made, before, strict=True):
        assert isinstance(frame, np.ndarray) and frame.shape == a.shape and frame.dtype == dtype
        assert np.array_equal(pair.a, a) and np.array_equal(pair.b, b)  # inputs untouched
        assert not np.shares_memory(frame, pair.a) and not np.shares_memory(frame, pair.b)
    # In order: each frame is the picture of its own pair, not of the place the other pairs show.
    for pair, frame, other in zip(batch, made, [grass[0], sky[0], grass[1], sky[1]], strict=True):
        assert distance(frame, pair.a) < distance(frame, other) / 4


@pytest.fixture(scope="module")
def panned(bigbuckbunny: Path) -> tuple[np.ndarray, np.ndarray]:
    """Grass seen through a window that moves 8 pixels right: motion every engine but blend follows."""
    wide = decode_rgb(bigbuckbunny, size=(SIZE[0] + 8, SIZE[1]), vf="crop=72:48:200:600", frames=1)[0]
    return np.ascontiguousarray(wide[:, :SIZE[0]]), np.ascontiguousarray(wide[:, 8:])


def test_a_reused_index_with_new_pictures_is_made_afresh(engine: Interpolator, crops: list[np.ndarray],
                                                        panned: tuple[np.ndarray, np.ndarray]) -> None:
    """A new job numbers its frames from 0 again: per-frame work kept under an index (features, flows)
    must not leak into it. The still sky first, then the moving grass under the same index."""
    sky = crops[0]
    engine.interpolate([FramePair(0, sky[0], sky[0], 0.5)])
    reused = engine.interpolate([FramePair(0, *panned, 0.5)])[0]
    fresh = engine.interpolate([FramePair(50, *panned, 0.5)])[0]
    assert distance(reused, fresh) < 0.5  # the same picture, up to rounding in another batch


def test_close_is_safe_twice_and_on_an_engine_never_loaded(engine: Interpolator, rife_weights: Path) -> None:
    engine.close()
    engine.close()
    unloaded = create_interpolator(EngineConfig(name=engine.name, device="cpu"), models_dir=rife_weights)
    unloaded.close()
    unloaded.close()


@pytest.mark.parametrize("name", list(ENGINES))
def test_each_engine_keeps_the_capabilities_its_spec_declares(name: str, crops: list[np.ndarray], rife_weights: Path,
                                                              tmp_path: Path) -> None:
    spec = ENGINES[name]
    declared = spec.capabilities
    assert all(other in ENGINES for other in declared.runs)
    settings = EngineConfig(name=name, device="cpu", batch_size="auto")
    if declared.needs_weights:
        with pytest.raises(WeightsError):
            create_interpolator(settings, models_dir=tmp_path / "empty")
    else:
        create_interpolator(settings, models_dir=tmp_path / "empty").close()
    engine = create_interpolator(settings, models_dir=rife_weights)
    assert isinstance(engine, Interpolator) and engine.name == name
    heard: list[str | None] = []
    engine.on_preparing = heard.append
    engine.load()
    try:
        if declared.chooses_batch:
            assert isinstance(engine.batch_size, int) and engine.batch_size >= 1
        else:
            assert engine.batch_size is None
        assert engine.threads >= 0 and isinstance(engine.uses_opencv, bool)
        engine.interpolate([FramePair(0, crops[0][0], crops[0][1], 0.5)])
        if not declared.prepares_per_size:
            assert heard == []
    finally:
        engine.on_preparing = None
        engine.close()


def test_weights_come_from_the_specs_that_have_them(rife_weights: Path) -> None:
    """`midframe models` and the daemon's preparation find the weights through the registry."""
    owners = {name for name, spec in ENGINES.items() if spec.weights is not None}
    assert owners == {"rife"}
    for name, spec in ENGINES.items():
        needed = weights_providers(name)
        expected = {owner for owner in (name, *spec.capabilities.runs) if owner in owners}
        assert set(needed) == expected
        assert spec.capabilities.needs_weights <= bool(needed)  # an engine that needs weights has a provider
    provider = ENGINES["rife"].weights_provider()
    assert provider is not None
    assert [item.path.name for item in provider.installed(rife_weights)] == ["rife.safetensors"]
    assert provider.ensure(rife_weights) == rife_weights / "rife.safetensors"


def test_auto_passes_the_frame_loop_s_listener_to_every_candidate(rife_weights: Path) -> None:
    """RIFE announces its once-per-size preparation whichever engine auto dispatches to first."""
    auto = create_interpolator(EngineConfig(name="auto", device="cpu"), models_dir=rife_weights)
    heard: list[str | None] = []
    auto.on_preparing = heard.append
    assert isinstance(auto, AutoInterpolator)
    candidates = list(auto.engines.values())
    assert [engine.name for engine in candidates] == list(ENGINES["auto"].capabilities.runs)
    assert all(engine.on_preparing == heard.append for engine in candidates)
    auto.on_preparing = None
    assert all(engine.on_preparing is None for engine in candidates)
    auto.close()
