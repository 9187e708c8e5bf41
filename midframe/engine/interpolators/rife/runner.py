"""The ``rife`` interpolator: batches of frame pairs through IFNet v4.25 on the CPU or a CUDA device."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from loguru import logger

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.rife.model import IFNet, pad_multiple
from midframe.engine.interpolators.rife.weights import load_state_dict
from midframe.errors import DeviceError, EngineError, OutOfMemory

_MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
Fingerprint = tuple[tuple[int, ...], str, bytes]


@dataclass(frozen=True)
class CudaView:
    """What torch sees of CUDA; a parameter so tests can pretend."""

    available: bool
    count: int
    build: str | None  # torch.version.cuda; None for a CPU-only torch

    @classmethod
    def current(cls) -> CudaView:
        available = torch.cuda.is_available()
        return cls(available, torch.cuda.device_count() if available else 0, torch.version.cuda)

    def describe(self) -> str:
        if self.build is None:
            return f"torch {torch.__version__} is a CPU-only build and sees no CUDA device"
        if not self.available or self.count == 0:
            return f"torch {torch.__version__} (CUDA {self.build}) sees no CUDA device"
        names = ", ".join(f"cuda:{i}" for i in range(self.count))
        return f"torch sees {self.count} CUDA device{'s' if self.count > 1 else ''}: {names}"


def resolve_device(requested: str, cuda: CudaView | None = None) -> torch.device:
    """``auto`` -> CUDA when torch sees it, else the CPU with a warning; a missing device is an error."""
    cuda = cuda or CudaView.current()
    if requested == "auto":
        if cuda.available and cuda.count > 0:
            return torch.device("cuda", 0)
        logger.warning("RIFE runs on the CPU ({}); expect about a second per 720p frame", cuda.describe())
        return torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "mps":
        if torch.backends.mps.is_available():
            return torch.device("mps")
        raise DeviceError("device mps: not available to this torch (Apple GPUs only); use auto or cpu")
    index = int(requested.partition(":")[2] or 0)
    if not cuda.available or index >= cuda.count:
        raise DeviceError(f"device {requested}: not available; {cuda.describe()}. Use device: auto or cpu")
    return torch.device("cuda", index)


def cpu_threads() -> int:
    """One torch thread per usable physical core (hyper-threads slow convolutions down)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:
        physical = usable
    return max(1, min(usable, physical))


def _is_out_of_memory(exc: RuntimeError) -> bool:
    text = str(exc)  # the CPU allocator raises a plain RuntimeError
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class RifeInterpolator:
    """RIFE v4.25. Reuses each frame's prepared tensor (image + encoder features) across pairs."""

    name = "rife"

    def __init__(
        self,
        settings: EngineConfig,
        models_dir: Path,
        *,
        cuda: CudaView | None = None,
        threads: int | None = None,
    ) -> None:
        self._models_dir = Path(models_dir)
        self._torch_device = resolve_device(settings.device, cuda)
        self.device = str(self._torch_device)
        on_cuda = self._torch_device.type == "cuda"
        if settings.fp16 is True and not on_cuda:
            logger.warning("fp16 is for CUDA devices; RIFE uses float32 on {}", self.device)
        self.fp16 = on_cuda and settings.fp16 in ("auto", True)
        self._dtype = torch.float16 if self.fp16 else torch.float32
        self.model_scale = settings.model_scale
        self._pad = pad_multiple(settings.model_scale)
        self.batch_size = settings.batch_size  # lowered for good after a CUDA out-of-memory
        self._threads = threads if threads is not None else cpu_threads()
        self._previous_threads: int | None = None
        self._model: IFNet | None = None
        # frame index -> (fingerprint, prepared 7 x H x W tensor); the newest few frames only
        self._prepared: OrderedDict[int, tuple[Fingerprint, torch.Tensor]] = OrderedDict()

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        if self._torch_device.type == "cpu":
            self._previous_threads = torch.get_num_threads()
            torch.set_num_threads(self._threads)
        model = IFNet()
        model.load_state_dict(load_state_dict(self._models_dir), strict=True)
        model.eval().requires_grad_(False)
        self._model = model.to(self._torch_device, self._dtype)
        self._prepared.clear()
        logger.debug("RIFE v4.25 on {} ({}), batch {}", self.device, self._dtype, self.batch_size)

    def close(self) -> None:
        self._prepared.clear()
        if self._model is None:
            return
        self._model = None
        if self._torch_device.type == "cuda":
            torch.cuda.empty_cache()
        if self._previous_threads is not None:
            torch.set_num_threads(self._previous_threads)
            self._previous_threads = None

    # --- work ------------------------------------------------------------------------------------

    @torch.inference_mode()
    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        if self._model is None:
            raise EngineError("the rife interpolator was used before load()")
        results: list[np.ndarray | None] = [None] * len(batch)
        todo: list[int] = []
        for k, pair in enumerate(batch):
            _check_pair(pair)
            if pair.t <= 0.0:
                results[k] = pair.a.copy()
            elif pair.t >= 1.0:
                results[k] = pair.b.copy()
            else:
                todo.append(k)
        done = 0
        while done < len(todo):
            chunk = _same_shape_prefix([batch[k] for k in todo[done : done + self.batch_size]])
            try:
                frames = self._run(chunk)
            except RuntimeError as exc:  # torch.OutOfMemoryError is one
                if not _is_out_of_memory(exc):
                    raise
                self._after_out_of_memory(chunk[0], exc)
                continue
            for offset, frame in enumerate(frames):
                results[todo[done + offset]] = frame
            done += len(chunk)
        return results  # type: ignore[return-value]

    def _after_out_of_memory(self, pair: FramePair, exc: RuntimeError) -> None:
        self._prepared.clear()
        if self._torch_device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            logger.warning("{} ran out of memory; RIFE batch size lowered to {}", self.device, self.batch_size)
            return
        height, width = pair.a.shape[:2]
        raise OutOfMemory(
            f"{self.device} ran out of memory interpolating {width}x{height} frames with RIFE even one "
            f"pair at a time; set engine.model_scale: 0.5 (--model-scale 0.5), or use device: cpu ({exc})"
        ) from None

    def _run(self, pairs: Sequence[FramePair]) -> list[np.ndarray]:
        assert self._model is not None
        dtype = pairs[0].a.dtype
        height, width = pairs[0].a.shape[:2]
        frame0 = self._frames([(p.index, p.a) for p in pairs])
        frame1 = self._frames([(p.index + 1, p.b) for p in pairs])
        t = torch.tensor([p.t for p in pairs], device=self._torch_device).view(-1, 1, 1, 1)
        out = self._model(frame0, frame1, t, model_scale=self.model_scale)[:, :, :height, :width]
        scaled = (out.float().clamp_(0.0, 1.0) * _MAX_VALUE[dtype]).round_()
        as_int = scaled.to(torch.uint8) if dtype == np.uint8 else scaled.to(torch.int32)
        host = as_int.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(frame, dtype=dtype) for frame in host]

    def _frames(self, frames: list[tuple[int, np.ndarray]]) -> torch.Tensor:
        """N x 7 x H' x W' prepared tensors, padded; computed once per source frame."""
        assert self._model is not None
        marks = [_fingerprint(array) for _, array in frames]
        missing: dict[int, tuple[Fingerprint, np.ndarray]] = {}
        for (index, array), mark in zip(frames, marks, strict=True):
            cached = self._prepared.get(index)
            if cached is None or cached[0] != mark:
                missing[index] = (mark, array)
        if missing:
            images = torch.stack([self._to_tensor(array) for _, array in missing.values()])
            prepared = self._model.prepare(images)
            for (index, (mark, _)), tensor in zip(missing.items(), prepared, strict=True):
                self._prepared[index] = (mark, tensor)
        for index, _ in frames:
            self._prepared.move_to_end(index)
        stacked = torch.stack([self._prepared[index][1] for index, _ in frames])
        while len(self._prepared) > self.batch_size + 2:
            self._prepared.popitem(last=False)
        return stacked

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        height, width = array.shape[:2]
        unit = 1.0 / _MAX_VALUE[array.dtype]
        if array.dtype == np.uint16:
            array = array.astype(np.int32)  # torch has no arithmetic on uint16
        elif not array.flags.writeable:
            array = array.copy()  # torch warns on read-only memory (frames decoded with frombuffer)
        image = torch.from_numpy(array).to(self._torch_device).permute(2, 0, 1).to(self._dtype) * unit
        return F.pad(image, (0, -width % self._pad, 0, -height % self._pad))


def _fingerprint(array: np.ndarray) -> Fingerprint:
    """A cheap check that a cached frame index still holds the same picture (a new job reuses indices)."""
    height, width = array.shape[:2]
    return array.shape, array.dtype.str, array[:: max(1, height // 16), :: max(1, width // 16)].tobytes()


def _same_shape_prefix(pairs: list[FramePair]) -> list[FramePair]:
    first = pairs[0].a
    for count, pair in enumerate(pairs):
        if pair.a.shape != first.shape or pair.a.dtype != first.dtype:
            return pairs[:count]
    return pairs


def _check_pair(pair: FramePair) -> None:
    a, b = pair.a, pair.b
    if a.ndim != 3 or a.shape[2] != 3 or a.shape != b.shape or a.dtype != b.dtype:
        raise EngineError(f"rife: frames must be two HxWx3 arrays of one shape, got {a.shape} and {b.shape}")
    if a.dtype not in _MAX_VALUE:
        raise EngineError(f"rife: frames must be uint8 or uint16, got {a.dtype}")

