"""The CUDA fast path of the torch backend: what runs on the CPU here, and the CUDA-only checks.

The CUDA tests need a real device: they are marked ``cuda`` and skip where torch sees no GPU (no GPU
was lent to the sessions that wrote them; ``benchmarks/gpu.py`` runs them first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.rife.model import IFNet, pad_multiple
from midframe.engine.interpolators.rife.runner import RifeInterpolator
from midframe.engine.interpolators.rife.torch_net import ELEMENTS_PER_PIXEL, TorchNetwork, cuda_batch_size
from midframe.engine.interpolators.rife.weights import load_state_dict
from tests.media import decode_rgb, psnr

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real CUDA device; torch sees none")


@pytest.fixture(scope="module")
def frames_1080(bigbuckbunny: Path) -> list[np.ndarray]:
    return list(decode_rgb(bigbuckbunny, vf=r"select=between(n\,60\,62),scale=1920:1080", size=(1920, 1080)).copy())


def test_cuda_batch_size_follows_free_memory() -> None:
    per_pair = ELEMENTS_PER_PIXEL * 1088 * 1920 * 2
    assert cuda_batch_size(0) == 1
    assert cuda_batch_size(2 * per_pair) == 1
    assert cuda_batch_size(8 * per_pair) == 4
    assert cuda_batch_size(140 * 2**30) == 8  # capped: larger batches gain nothing once the GPU is full


def test_the_fast_path_is_cuda_only_and_the_cpu_network_stays_eager(rife_weights: Path) -> None:
    model = IFNet()
    model.load_state_dict(load_state_dict(rife_weights))
    network = TorchNetwork(model.eval(), device=torch.device("cpu"), dtype=torch.float32, model_scale=1.0,
                           pad_multiple=pad_multiple(1.0), fast=True)
    assert not network.compiled and network._upload is None and network._format == torch.contiguous_format
    frame = np.zeros((70, 90, 3), np.uint8)
    prepared = network.prepare([frame, frame])
    assert [p.shape for p in prepared] == [(7, 128, 128)] * 2
    out = network.interpolate(prepared[:1], prepared[1:], [0.5], like=frame)
    assert out[0].shape == frame.shape and out[0].dtype == np.uint8


@pytest.mark.cuda
@needs_cuda
def test_fast_path_matches_eager_fp16_and_the_cpu(rife_weights: Path, frames_1080) -> None:
    """Runs only with a real GPU: fp16 channels-last compiled against fp16 eager and fp32 on the CPU."""
    model = IFNet()
    model.load_state_dict(load_state_dict(rife_weights))
    model.eval().requires_grad_(False)
    a, b = frames_1080[0], frames_1080[2]
    device = torch.device("cuda", 0)
    results = {}
    with torch.inference_mode():
        for fast in (False, True):
            network = TorchNetwork(model, device=device, dtype=torch.float16, model_scale=1.0,
                                   pad_multiple=pad_multiple(1.0), fast=fast)
            prepared = network.prepare([a, b])
            for _ in range(3 if fast else 1):  # the compiled graph is captured on the first calls
                results[fast] = network.interpolate(prepared[:1], prepared[1:], [0.5], like=a)[0]
    cpu = RifeInterpolator(EngineConfig(device="cpu", backend="torch"), rife_weights)
    cpu.load()
    try:
        reference = cpu.interpolate([FramePair(0, a, b, 0.5)])[0]
    finally:
        cpu.close()
    assert psnr(results[True], results[False]) > 45
    assert psnr(results[True], reference) > 40


@pytest.mark.cuda
@needs_cuda
def test_cuda_interpolator_picks_torch_and_a_memory_sized_batch(rife_weights: Path, frames_1080) -> None:
    """Runs only with a real GPU."""
    engine = RifeInterpolator(EngineConfig(device="cuda"), rife_weights)
    assert engine.backend == "torch" and engine.fp16 and engine.threads == 0
    assert engine.batch_size == cuda_batch_size(torch.cuda.mem_get_info()[0])
    engine.load()
    try:
        out = engine.interpolate([FramePair(0, frames_1080[0], frames_1080[2], t) for t in (0.25, 0.5, 0.75)])
    finally:
        engine.close()
    assert [o.shape for o in out] == [(1080, 1920, 3)] * 3
    assert psnr(out[1], frames_1080[1]) > psnr(frames_1080[0], frames_1080[1])
