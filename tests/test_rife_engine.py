"""The rife interpolator with the real v4.25 weights on the CPU: shapes, exactness, quality, devices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair, Interpolator
from midframe.engine.interpolators.rife import create
from midframe.engine.interpolators.rife.devices import CudaView, Device, resolve_device, torch_version
from midframe.engine.interpolators.rife.model import pad_multiple
from midframe.engine.interpolators.rife.runner import RifeInterpolator
from midframe.errors import DeviceError, OutOfMemory
from tests.media import decode_rgb, psnr


@pytest.fixture(scope="module")
def bbb_frames(bigbuckbunny: Path) -> np.ndarray:
    """The first 64 frames of bigbuckbunny.mp4 (1280x720), RGB."""
    return decode_rgb(bigbuckbunny, frames=64, size=(1280, 720))


@pytest.fixture(scope="module")
def rife(rife_weights: Path):  # noqa: F811
    engine = create(EngineConfig(device="cpu", backend="torch", batch_size=4), rife_weights)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def crops(bbb_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An odd-sized pair (333x197) with real motion."""
    return bbb_frames[60][300:497, 500:833].copy(), bbb_frames[62][300:497, 500:833].copy()


def test_is_an_interpolator_on_the_cpu(rife: RifeInterpolator) -> None:
    assert isinstance(rife, Interpolator)
    assert rife.name == "rife" and rife.device == "cpu" and not rife.fp16


def test_pad_multiple_grows_as_model_scale_shrinks() -> None:
    assert [pad_multiple(s) for s in (2.0, 1.0, 0.5, 0.25)] == [64, 64, 128, 256]
    assert pad_multiple(0.75) % 64 == 0 and (pad_multiple(0.75) * 3 // 4) % 64 == 0


def test_odd_sizes_come_back_cropped_with_the_input_dtype(rife: RifeInterpolator, crops) -> None:
    a, b = crops
    out = rife.interpolate([FramePair(0, a, b, 0.5), FramePair(0, a, b, 0.25)])
    assert [frame.shape for frame in out] == [(197, 333, 3)] * 2
    assert all(frame.dtype == np.uint8 and frame.flags.c_contiguous for frame in out)
    deep = rife.interpolate([FramePair(10, a.astype(np.uint16) * 257, b.astype(np.uint16) * 257, 0.5)])[0]
    assert deep.dtype == np.uint16 and deep.shape == (197, 333, 3)
    assert np.abs(deep / 257.0 - out[0]).max() <= 1.0  # the same picture, in 16 bits
    assert deep.max() > 255  # really 16-bit values, not 8-bit ones in a wide type


def test_model_scale_half_on_an_odd_size(rife_weights: Path, crops) -> None:  # noqa: F811
    a, b = crops
    engine = create(EngineConfig(device="cpu", backend="torch", model_scale=0.5), rife_weights)
    engine.load()
    try:
        out = engine.interpolate([FramePair(0, a, b, 0.5)])[0]
    finally:
        engine.close()
    assert out.shape == a.shape
    assert psnr(out, a) < 60 and psnr(out, b) < 60  # a new picture, not a copy


def test_t0_and_t1_return_the_inputs_exactly(rife: RifeInterpolator, crops) -> None:
    a, b = crops
    out = rife.interpolate([FramePair(3, a, b, 0.0), FramePair(3, a, b, 1.0)])
    assert np.array_equal(out[0], a) and np.array_equal(out[1], b)
    assert out[0] is not a and out[1] is not b


def test_beats_blend_on_real_footage(rife: RifeInterpolator, bbb_frames: np.ndarray) -> None:
    a, truth, b = bbb_frames[60], bbb_frames[61], bbb_frames[62]
    made = rife.interpolate([FramePair(0, a, b, 0.5)])[0]
    blend = ((a.astype(np.float64) + b) / 2).round().astype(np.uint8)
    assert psnr(made, truth) > psnr(blend, truth) + 2.0, (psnr(made, truth), psnr(blend, truth))


def test_each_frame_is_prepared_once_and_batches_match_single_pairs(
    rife: RifeInterpolator, bbb_frames: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [f[300:397, 500:631].copy() for f in bbb_frames[20:24]]  # 131x97: one 128x192 tile
    prepared: list[int] = []
    model = rife._model
    original = model.prepare
    monkeypatch.setattr(model, "prepare", lambda images: prepared.append(images.shape[0]) or original(images))
    pairs = [FramePair(i, frames[i], frames[i + 1], t) for i in range(3) for t in (1 / 3, 2 / 3)]
    batched = rife.interpolate(pairs)
    assert sum(prepared) == 4  # frames 0..3, each once, though each appears in up to four pairs
    prepared.clear()
    again = rife.interpolate([FramePair(2, frames[2], frames[3], 0.5)])
    assert sum(prepared) == 0  # both frames still cached from the last batch
    # A new clip reusing index 2 with other pictures must not get the cached tensors.
    other = [np.ascontiguousarray(f[::-1]) for f in frames]
    fresh = rife.interpolate([FramePair(2, other[2], other[3], 0.5)])[0]
    assert sum(prepared) == 2
    assert not np.array_equal(fresh, again[0])
    one_by_one = [rife.interpolate([pair])[0] for pair in pairs[:2]]
    for single, many in zip(one_by_one, batched[:2], strict=True):
        assert np.abs(single.astype(int) - many).max() <= 1


def test_auto_device_without_cuda_warns_and_uses_the_cpu() -> None:
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        device = resolve_device("auto", CudaView(available=False, count=0, build=None))
    finally:
        logger.remove(sink)
    assert device == Device("cpu")
    assert len(warnings) == 1 and "CPU" in warnings[0]


@pytest.mark.skipif(not torch_version().endswith("+cpu"), reason="this torch is not a CPU-only build")
def test_a_cpu_only_torch_is_known_without_importing_it() -> None:
    script = ("import sys\nfrom midframe.engine.interpolators.rife.devices import CudaView, resolve_device\n"
              "view = CudaView.current()\nprint(view.available, view.build, resolve_device('auto', view), "
              "resolve_device('cpu'), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "None", "cpu", "cpu", "False"]
    assert "CPU-only build" in done.stderr  # the warning auto gives, naming what torch is


def test_the_engine_warns_once_when_it_loads_not_when_it_is_built_to_be_checked(rife_weights: Path) -> None:
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        checked = RifeInterpolator(EngineConfig(device="auto", fp16=True), rife_weights,
                                   cuda=CudaView(available=False, count=0, build=None))
        checked.close()
        assert warnings == []
        engine = RifeInterpolator(EngineConfig(device="auto", fp16=True), rife_weights,
                                  cuda=CudaView(available=False, count=0, build=None), openvino_installed=False)
        engine.load()
        engine.close()
    finally:
        logger.remove(sink)
    assert len(warnings) == 2, warnings
    assert "RIFE runs on the CPU (torch" in warnings[0] and "fp16 is for CUDA devices" in warnings[1]


def test_auto_device_picks_cuda_when_torch_sees_it() -> None:
    assert resolve_device("auto", CudaView(available=True, count=2, build="12.4")) == Device("cuda", 0)


def test_missing_cuda_device_is_an_error_naming_what_torch_sees() -> None:
    with pytest.raises(DeviceError, match="device cuda: not available; torch .* CPU-only build"):
        resolve_device("cuda", CudaView(available=False, count=0, build=None))
    with pytest.raises(DeviceError, match="device cuda:2: not available; torch sees 2 CUDA devices: cuda:0, cuda:1"):
        resolve_device("cuda:2", CudaView(available=True, count=2, build="12.4"))
    assert resolve_device("cuda:1", CudaView(available=True, count=2, build="12.4")) == Device("cuda", 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_on_this_machine_fails_clearly(rife_weights: Path) -> None:  # noqa: F811
    with pytest.raises(DeviceError, match="device cuda:0: not available"):
        create(EngineConfig(device="cuda:0"), rife_weights)


def test_out_of_memory_halves_the_batch_then_suggests_model_scale(
    rife: RifeInterpolator, bbb_frames: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = bbb_frames[30][:50, :70].copy(), bbb_frames[32][:50, :70].copy()
    real_run = rife._run
    sizes: list[int] = []

    def small_batches_only(pairs):
        sizes.append(len(pairs))
        if len(pairs) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(pairs)

    monkeypatch.setattr(rife, "_run", small_batches_only)
    monkeypatch.setattr(rife, "batch_size", 4)
    out = rife.interpolate([FramePair(0, a, b, t) for t in (0.2, 0.4, 0.6)])
    assert len(out) == 3 and sizes == [3, 2, 1, 1, 1]
    assert rife.batch_size == 1

    def always(pairs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(rife, "_run", always)
    with pytest.raises(OutOfMemory, match=r"70x50 .*model_scale: 0\.5"):
        rife.interpolate([FramePair(0, a, b, 0.5)])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_cuda_fp16_matches_the_cpu(rife_weights: Path, rife: RifeInterpolator, bbb_frames: np.ndarray) -> None:  # noqa: F811
    """fp16 on CUDA against fp32 on the CPU. Written on a machine without a GPU, where it skips; it runs
    wherever torch sees CUDA."""
    a, b = bbb_frames[60], bbb_frames[62]
    gpu = create(EngineConfig(device="cuda", batch_size=2), rife_weights)
    assert gpu.fp16 and gpu.device == "cuda:0"
    gpu.load()
    try:
        torch.cuda.reset_peak_memory_stats()
        made = gpu.interpolate([FramePair(0, a, b, 0.5), FramePair(0, a, b, 0.25)])
        peak = torch.cuda.max_memory_allocated()
    finally:
        gpu.close()
    reference = rife.interpolate([FramePair(0, a, b, 0.5)])[0]
    assert made[0].shape == a.shape and made[0].dtype == np.uint8
    assert psnr(made[0], reference) > 40
    assert peak < 4 * 2**30


def test_a_daemon_says_rife_runs_on_the_cpu_once_not_for_every_job(rife_weights: Path, tmp_path: Path) -> None:
    """Through the daemon's own sinks (stderr and the log file): two jobs load the engine twice; the
    remark about this machine is in the log once, while an ordinary warning said twice stays twice."""
    from midframe.log import LOG_FILE_NAME, configure_logging

    configure_logging(level="INFO", log_dir=tmp_path, stderr=False)
    try:
        for _ in range(2):
            engine = RifeInterpolator(EngineConfig(device="auto"), rife_weights,
                                      cuda=CudaView(available=False, count=0, build=None), openvino_installed=False)
            engine.load()
            engine.close()
            logger.warning("an ordinary warning")
    finally:
        logger.remove()
        logger.configure(patcher=lambda record: None)
        logger.add(sys.stderr)
    text = (tmp_path / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert text.count("RIFE runs on the CPU") == 1 and text.count("an ordinary warning") == 2
    assert text.count("RIFE v4.25 on cpu") == 2  # each job still says what it runs on
