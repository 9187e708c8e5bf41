"""RIFE's backends: choosing one, the rearranged forward pass, OpenVINO against torch, the compiled cache.

OpenVINO converts the real v4.25 network once per frame size (about 10 s): the tests share one
temporary cache and use 320x192 crops of real footage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from loguru import logger

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.rife import openvino_net
from midframe.engine.interpolators.rife.backends import choose_backend, importable
from midframe.engine.interpolators.rife.model import IFNet
from midframe.engine.interpolators.rife.openvino_net import cache_key, entry_name, run_requests
from midframe.engine.interpolators.rife.runner import RifeInterpolator
from midframe.engine.interpolators.rife.weights import installed_weights, load_state_dict
from midframe.errors import ConfigError, EngineError
from tests.media import decode_rgb, psnr

needs_openvino = pytest.mark.skipif(not importable("openvino"), reason="the openvino package is not installed")


class Said:
    """Collects log lines (loguru) at INFO and above."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __enter__(self) -> Said:
        self._sink = logger.add(lambda message: self.lines.append(str(message)), level="INFO")
        return self

    def __exit__(self, *exc: object) -> None:
        logger.remove(self._sink)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


@pytest.fixture(scope="module")
def crops(bigbuckbunny: Path) -> list[np.ndarray]:
    """Frames 60..64 of bigbuckbunny.mp4, a 320x192 crop with motion."""
    return list(decode_rgb(bigbuckbunny, vf=r"select=between(n\,60\,64),crop=320:192:480:300", size=(320, 192)).copy())


@pytest.fixture(scope="module")
def torch_rife(rife_weights: Path):
    engine = RifeInterpolator(EngineConfig(device="cpu", backend="torch"), rife_weights)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def openvino_cache(tmp_path_factory: pytest.TempPathFactory, openvino_converter_started: None) -> Path:
    return tmp_path_factory.mktemp("rife-openvino")


@pytest.fixture(scope="module")
def openvino_rife(rife_weights: Path, openvino_cache: Path):
    engine = RifeInterpolator(EngineConfig(device="cpu", backend="auto"), rife_weights, cache_dir=openvino_cache)
    engine.load()
    yield engine
    engine.close()


# --- choosing ------------------------------------------------------------------------------------


def test_auto_takes_openvino_on_the_cpu_only_where_it_is_installed() -> None:
    assert choose_backend("auto", device_type="cpu", openvino_installed=True).backend == "openvino"
    fallback = choose_backend("auto", device_type="cpu", openvino_installed=False)
    assert fallback.backend == "torch" and not fallback.explicit and "pip install openvino" in fallback.reason
    assert choose_backend("auto", device_type="cuda", openvino_installed=True).backend == "torch"
    assert choose_backend("torch", device_type="cpu", openvino_installed=True).explicit


def test_an_explicit_backend_that_cannot_run_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"engine.backend = 'openvino': the openvino package is not installed"):
        choose_backend("openvino", device_type="cpu", openvino_installed=False)
    with pytest.raises(ConfigError, match=r"engine.backend = 'openvino' runs on the CPU only.*cuda"):
        choose_backend("openvino", device_type="cuda", openvino_installed=True)


def test_batch_size_auto_is_one_for_torch_on_the_cpu_and_one_per_openvino_stream(rife_weights: Path) -> None:
    engine = RifeInterpolator(EngineConfig(device="cpu"), rife_weights, openvino_installed=False)
    assert engine.batch_size == 1 and engine.backend == "torch" and engine.threads >= 1
    assert RifeInterpolator(EngineConfig(device="cpu", batch_size=3), rife_weights).batch_size == 3
    for threads, batch in ((1, 1), (2, 2), (8, 2)):
        openvino = RifeInterpolator(EngineConfig(device="cpu"), rife_weights, openvino_installed=True, threads=threads)
        assert (openvino.backend, openvino.batch_size) == ("openvino", batch)


# --- the rearranged forward pass -----------------------------------------------------------------


@pytest.mark.parametrize("model_scale", [1.0, 0.5])
def test_rearranged_forward_equals_the_published_one(rife_weights: Path, crops, model_scale: float) -> None:
    model = IFNet()
    model.load_state_dict(load_state_dict(rife_weights))
    model.eval()
    multiple = 64 if model_scale == 1.0 else 128

    def prepared(frame: np.ndarray) -> torch.Tensor:
        image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
        return model.prepare(F.pad(image, (0, -320 % multiple, 0, -192 % multiple)))

    with torch.inference_mode():
        a = torch.cat([prepared(crops[0]), prepared(crops[2])])
        b = torch.cat([prepared(crops[2]), prepared(crops[4])])
        t = torch.tensor([0.5, 0.3]).view(2, 1, 1, 1)
        fast = model(a, b, t, model_scale=model_scale)
        published = model._forward_general(a, b, t, model_scale)
    assert fast.shape == published.shape
    assert (fast - published).abs().max().item() < 2e-4
    assert (fast - published).abs().mean().item() < 1e-6


# --- OpenVINO against torch ----------------------------------------------------------------------


@needs_openvino
def test_openvino_matches_torch_on_real_frames_and_keeps_t_an_input(openvino_rife, torch_rife, crops) -> None:
    assert openvino_rife.backend == "openvino"
    pairs = [FramePair(0, crops[0], crops[2], 0.5), FramePair(0, crops[0], crops[2], 0.25),
             FramePair(2, crops[2], crops[4], 0.75)]
    heard: list[str | None] = []
    openvino_rife.on_preparing = heard.append  # as the frame loop does, for the status line
    try:
        with Said() as said:
            made = openvino_rife.interpolate(pairs)
    finally:
        openvino_rife.on_preparing = None
    assert said.has("compiling RIFE for 320x192 with OpenVINO (once per size, ~")
    assert len(heard) == 2 and heard[1] is None, heard
    assert heard[0] is not None and heard[0].startswith("preparing RIFE for 320x192 (once per size, about ")
    reference = torch_rife.interpolate(pairs)
    for ours, theirs in zip(made, reference, strict=True):
        assert ours.shape == (192, 320, 3) and ours.dtype == np.uint8 and ours.flags.c_contiguous
        assert psnr(ours, theirs) > 60
    assert psnr(made[0], made[1]) < 45  # t is an input: t=0.25 is another picture than t=0.5
    truth = crops[1]
    assert psnr(made[0], truth) > psnr(((crops[0].astype(float) + crops[2]) / 2).round(), truth)


@needs_openvino
def test_converted_graphs_are_cached_by_key_and_reused(rife_weights: Path, openvino_rife, openvino_cache: Path,
                                                       crops) -> None:
    openvino_rife.interpolate([FramePair(0, crops[0], crops[2], 0.5)])  # converted by now
    entries = [p for p in openvino_cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and entries[0].name.startswith("320x192-uint8-s1-")
    key = json.loads((entries[0] / "key.json").read_text())
    assert key["weights_sha256"] == installed_weights(rife_weights).file_sha256
    assert {"openvino", "torch", "code", "height", "width", "dtype", "model_scale"} <= set(key)
    assert not any(p.name.endswith(".part") for p in openvino_cache.iterdir())
    again = RifeInterpolator(EngineConfig(device="cpu", backend="openvino"), rife_weights, cache_dir=openvino_cache)
    again.load()
    try:
        with Said() as said:
            out = again.interpolate([FramePair(0, crops[0], crops[2], 0.5)])[0]
    finally:
        again.close()
    assert not said.has("compiling RIFE")
    assert np.array_equal(out, openvino_rife.interpolate([FramePair(0, crops[0], crops[2], 0.5)])[0])


@needs_openvino
def test_a_damaged_cache_entry_is_converted_again_and_16_bit_frames_match_torch(
    rife_weights: Path, openvino_rife, torch_rife, openvino_cache: Path, crops
) -> None:
    import openvino

    key = cache_key(weights_sha256=installed_weights(rife_weights).file_sha256, openvino_version=openvino.__version__,
                    size=(192, 320), dtype=np.dtype(np.uint16), model_scale=1.0)
    damaged = openvino_cache / entry_name(key)
    damaged.mkdir()
    (damaged / "key.json").write_text("{}")
    (damaged / "prepare.xml").write_text("<not a model")
    a, b = crops[0].astype(np.uint16) * 257, crops[2].astype(np.uint16) * 257
    with Said() as said:
        deep = openvino_rife.interpolate([FramePair(20, a, b, 0.5)])[0]
    assert said.has("unreadable") and said.has("compiling RIFE for 320x192")
    assert deep.dtype == np.uint16 and deep.max() > 255
    assert psnr(deep, torch_rife.interpolate([FramePair(20, a, b, 0.5)])[0]) > 60
    assert (damaged / "forward.xml").is_file()


@needs_openvino
def test_openvino_that_cannot_store_its_graphs_falls_back_to_torch_unless_named(rife_weights: Path, tmp_path: Path,
                                                                               crops, torch_rife) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    auto = RifeInterpolator(EngineConfig(device="cpu"), rife_weights, cache_dir=not_a_folder)
    auto.load()
    try:
        with Said() as said:
            out = auto.interpolate([FramePair(0, crops[0], crops[2], 0.5)])[0]
    finally:
        auto.close()
    assert auto.backend == "torch" and said.has("using torch on the CPU")
    assert np.array_equal(out, torch_rife.interpolate([FramePair(0, crops[0], crops[2], 0.5)])[0])
    named = RifeInterpolator(EngineConfig(device="cpu", backend="openvino"), rife_weights, cache_dir=not_a_folder)
    named.load()
    try:
        with pytest.raises(EngineError, match=r"engine.backend = 'openvino' cannot run: .*cache"):
            named.interpolate([FramePair(0, crops[0], crops[2], 0.5)])
    finally:
        named.close()


@needs_openvino
def test_two_streams_give_a_batch_exactly_what_pair_by_pair_gives(openvino_rife, crops) -> None:
    assert openvino_rife.batch_size == min(2, openvino_rife.threads)
    pairs = [FramePair(0, crops[0], crops[1], 0.5), FramePair(1, crops[1], crops[2], 0.5),
             FramePair(2, crops[2], crops[3], 0.5)]
    together = openvino_rife.interpolate(pairs)
    alone = [openvino_rife.interpolate([pair])[0] for pair in pairs]
    for one, other in zip(together, alone, strict=True):
        assert one.flags.c_contiguous and np.array_equal(one, other)
    assert psnr(together[0], together[1]) < 40  # each pair got its own answer, not a shared buffer


@needs_openvino
def test_frames_above_the_streams_limit_run_on_one_stream(rife_weights: Path, openvino_rife, openvino_cache: Path,
                                                          crops, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = FramePair(0, crops[0], crops[2], 0.5)
    wanted = openvino_rife.interpolate([pair])[0]
    monkeypatch.setattr(openvino_net, "STREAMS_UP_TO_PIXELS", 320 * 192 - 1)
    engine = RifeInterpolator(EngineConfig(device="cpu"), rife_weights, cache_dir=openvino_cache, threads=2)
    engine.load()
    try:
        out = engine.interpolate([pair, pair])
        graphs = next(iter(engine._network._graphs.values()))
    finally:
        engine.close()
    assert len(graphs.forward) == len(graphs.prepare) == 1
    assert np.array_equal(out[0], wanted) and np.array_equal(out[1], wanted)


class _Request:
    """A stand-in for an OpenVINO InferRequest, to see the order of calls (the real ones run above)."""

    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail, self.value = log, name, fail, None

    def start_async(self, inputs: list[np.ndarray], share_inputs: bool) -> None:
        self.log.append(f"start {self.name}")
        self.value = inputs[0] * 2

    def wait(self) -> None:
        self.log.append(f"wait {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} failed")

    def get_output_tensor(self, index: int):
        return type("Tensor", (), {"data": self.value})()


def test_requests_run_side_by_side_in_order_and_a_failure_still_waits_for_the_others() -> None:
    log: list[str] = []
    out = run_requests([_Request(log, "a"), _Request(log, "b")], [[np.full(2, i)] for i in range(3)])
    assert [o.tolist() for o in out] == [[0, 0], [2, 2], [4, 4]]
    assert log == ["start a", "start b", "wait a", "wait b", "start a", "wait a"]
    log.clear()
    with pytest.raises(RuntimeError, match="a failed"):
        run_requests([_Request(log, "a", fail=True), _Request(log, "b")], [[np.zeros(1)], [np.zeros(1)]])
    assert log == ["start a", "start b", "wait a", "wait b"]


@needs_openvino
def test_a_run_on_cached_graphs_never_imports_torch(tmp_path: Path, rife_weights: Path, openvino_rife,
                                                    openvino_cache: Path, crops) -> None:
    pair = FramePair(0, crops[0], crops[2], 0.5)
    wanted = openvino_rife.interpolate([pair])[0]  # converted and cached by now
    np.save(tmp_path / "a.npy", crops[0])
    np.save(tmp_path / "b.npy", crops[2])
    script = f"""
import sys
import numpy as np
from pathlib import Path
from midframe.config import EngineConfig
from midframe.engine.interpolators import FramePair, create_interpolator
engine = create_interpolator(EngineConfig(name="rife", device="cpu"), models_dir=Path({str(rife_weights)!r}))
engine._cache_dir = Path({str(openvino_cache)!r})
engine.load()
a, b = np.load({str(tmp_path / "a.npy")!r}), np.load({str(tmp_path / "b.npy")!r})
np.save({str(tmp_path / "out.npy")!r}, engine.interpolate([FramePair(0, a, b, 0.5)])[0])
engine.close()
print("torch imported" if "torch" in sys.modules else "no torch", engine.backend)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["no", "torch", "openvino"], done.stderr
    assert "compiling RIFE" not in done.stderr
    assert np.array_equal(np.load(tmp_path / "out.npy"), wanted)
