"""RIFE through PyTorch: the fallback on the CPU (eager) and the CUDA path.

On CUDA the fast path is fp16 weights and activations, channels-last memory, frames uploaded as uint8
from pinned memory on a second stream (so the copy overlaps the previous work) and converted on the
device, results converted to uint8/uint16 on the device before the download, and ``torch.compile`` with
CUDA graphs (``mode="reduce-overhead"``) where Triton is installed. Compilation failing (at wrap time or
at the first call) drops back to eager with a warning. The CPU path is plain eager float32: OpenVINO is
the fast CPU backend (see ``openvino_net``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from loguru import logger

from midframe.engine.interpolators.rife.model import IFNet

_TOP = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# Rough peak activation memory of one pair per padded pixel, in elements of the working dtype (measured
# on the CPU at 720p in float32: ~1.2 GiB for one pair = ~330 per pixel; kept generous).
ELEMENTS_PER_PIXEL = 400


def cuda_batch_size(free_bytes: int, *, height: int = 1088, width: int = 1920, itemsize: int = 2,
                    most: int = 8) -> int:
    """Pairs per call that fit in half the free CUDA memory (for 1080p unless told the size)."""
    per_pair = ELEMENTS_PER_PIXEL * height * width * itemsize
    return max(1, min(most, (free_bytes // 2) // per_pair))


def compile_available() -> bool:
    """``torch.compile`` for CUDA needs Triton."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return hasattr(torch, "compile")


class TorchNetwork:
    """IFNet in torch on one device; prepared frames are device tensors (7 x H' x W')."""

    name = "torch"

    def __init__(self, model: IFNet, *, device: torch.device, dtype: torch.dtype, model_scale: float,
                 pad_multiple: int, fast: bool = False, compile_model: bool | None = None) -> None:
        self._device = device
        self._dtype = dtype
        self._model_scale = model_scale
        self._multiple = pad_multiple
        self._cuda = device.type == "cuda"
        self._fast = fast and self._cuda
        self._format = torch.channels_last if self._fast else torch.contiguous_format
        # Module.to takes memory_format (it parses its arguments as Tensor.to does); torch's stubs leave it out.
        self._model = (model.to(device, dtype, memory_format=self._format)  # type: ignore[call-overload]
                       if self._fast else model.to(device, dtype))
        self._forward: Callable[..., torch.Tensor] = self._model
        self._upload = torch.cuda.Stream(device) if self._fast else None
        want_compile = self._fast if compile_model is None else compile_model
        self._compiled = False
        if want_compile and compile_available():
            try:
                self._forward = torch.compile(self._model, mode="reduce-overhead", dynamic=False)
                self._compiled = True
            except RuntimeError as exc:
                logger.warning("torch.compile is unavailable for RIFE ({}); running eager", exc)

    @property
    def compiled(self) -> bool:
        return self._compiled

    # --- the Network interface (see runner) ---

    @torch.inference_mode()
    def prepare(self, frames: Sequence[np.ndarray]) -> list[torch.Tensor]:
        images = self._to_device(frames)
        return list(self._model.prepare(images).unbind(0))

    @torch.inference_mode()
    def interpolate(self, first: Sequence[torch.Tensor], second: Sequence[torch.Tensor], times: Sequence[float],
                    like: np.ndarray) -> list[np.ndarray]:
        height, width = like.shape[:2]
        frame0 = torch.stack(list(first)).contiguous(memory_format=self._format)
        frame1 = torch.stack(list(second)).contiguous(memory_format=self._format)
        t = torch.tensor(list(times), device=self._device, dtype=torch.float32).view(-1, 1, 1, 1)
        out = self._run(frame0, frame1, t)[:, :, :height, :width]
        scaled = (out.float().clamp_(0.0, 1.0) * _TOP[like.dtype]).round_()
        as_int = scaled.to(torch.uint8) if like.dtype == np.uint8 else scaled.to(torch.int32)
        host = as_int.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(frame, dtype=like.dtype) for frame in host]

    def close(self) -> None:
        self._forward = self._model

    # --- inside ---

    def _run(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self._compiled:
            return self._model(frame0, frame1, t, model_scale=self._model_scale)
        try:
            out = self._forward(frame0, frame1, t, model_scale=self._model_scale)
            return out.clone()  # CUDA graph outputs are overwritten by the next replay
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # Inductor/Triton raise many types; any of them means "run eager"
            logger.warning("torch.compile failed for RIFE ({}: {}); running eager from now on",
                           type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            self._forward, self._compiled = self._model, False
            return self._model(frame0, frame1, t, model_scale=self._model_scale)

    def _to_device(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """N x 3 x H' x W' in 0..1, padded; uploaded as integers, converted on the device."""
        height, width = frames[0].shape[:2]
        dtype = frames[0].dtype
        stacked = np.stack(frames)
        if dtype == np.uint16:
            stacked = stacked.astype(np.int32)  # torch has no arithmetic on uint16
        host = torch.from_numpy(stacked)
        if self._upload is not None:
            host = host.pin_memory()
            with torch.cuda.stream(self._upload):
                images = host.to(self._device, non_blocking=True)
            torch.cuda.current_stream(self._device).wait_stream(self._upload)
            images.record_stream(torch.cuda.current_stream(self._device))
        else:
            images = host.to(self._device)
        unit = 1.0 / _TOP[dtype]
        images = images.permute(0, 3, 1, 2).to(self._dtype) * unit
        padded = F.pad(images, (0, -width % self._multiple, 0, -height % self._multiple))
        return padded.contiguous(memory_format=self._format)
