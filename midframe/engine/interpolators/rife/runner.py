"""The ``rife`` interpolator: batches of frame pairs through IFNet v4.25 on the CPU or a CUDA device.

The interpolator owns what every runtime shares: device and backend choice, batching, the cache of
prepared frames (each source frame's encoder features are computed once and reused by the pairs on
both sides of it), out-of-memory handling. A ``Network`` (``torch_net``, ``openvino_net``) runs IFNet.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from loguru import logger

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.rife import allocator
from midframe.engine.interpolators.rife.backends import choose_backend, importable
from midframe.engine.interpolators.rife.model import IFNet, pad_multiple
from midframe.engine.interpolators.rife.openvino_net import OpenVinoFailure, OpenVinoNetwork
from midframe.engine.interpolators.rife.torch_net import TorchNetwork, cuda_batch_size
from midframe.engine.interpolators.rife.weights import installed_weights, load_state_dict
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
        logger.warning("RIFE runs on the CPU ({}); expect about half a second per 720p frame with OpenVINO, "
                       "a second with torch", cuda.describe())
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


class Network(Protocol):
    """One runtime of IFNet (``TorchNetwork``, ``OpenVinoNetwork``); prepared frames in its own form."""

    name: str

    def prepare(self, frames: Sequence[np.ndarray]) -> list[Any]: ...

    def interpolate(self, first: Sequence[Any], second: Sequence[Any], times: Sequence[float],
                    like: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class RifeInterpolator:
    """RIFE v4.25. Reuses each frame's prepared tensor (image + encoder features) across pairs."""

    name = "rife"

    def __init__(
        self,
        settings: EngineConfig,
        models_dir: Path,
        *,
        cache_dir: Path | None = None,
        cuda: CudaView | None = None,
        threads: int | None = None,
        openvino_installed: bool | None = None,
    ) -> None:
        self._models_dir = Path(models_dir)
        # Paths.models_dir is <cache_dir>/models, so compiled graphs go beside the weights.
        self._cache_dir = Path(cache_dir) if cache_dir else self._models_dir.parent / "rife-openvino"
        self._torch_device = resolve_device(settings.device, cuda)
        self.device = str(self._torch_device)
        on_cuda = self._torch_device.type == "cuda"
        if settings.fp16 is True and not on_cuda:
            logger.warning("fp16 is for CUDA devices; RIFE uses float32 on {}", self.device)
        self.fp16 = on_cuda and settings.fp16 in ("auto", True)
        self._dtype = torch.float16 if self.fp16 else torch.float32
        self.model_scale = settings.model_scale
        self._pad = pad_multiple(settings.model_scale)
        installed = importable("openvino") if openvino_installed is None else openvino_installed
        self.choice = choose_backend(settings.backend, device_type=self._torch_device.type,
                                     openvino_installed=installed)
        self.backend = self.choice.backend
        self.batch_size = self._batch_size(settings.batch_size)  # lowered for good after an out-of-memory
        self._threads = threads if threads is not None else cpu_threads()
        self._previous_threads: int | None = None
        self._model: IFNet | None = None
        self._network: Network | None = None
        # frame index -> (fingerprint, prepared frame); the newest few frames only
        self._prepared: OrderedDict[int, tuple[Fingerprint, Any]] = OrderedDict()

    def _batch_size(self, requested: int | str) -> int:
        if requested != "auto":
            return int(requested)
        if self._torch_device.type != "cuda":
            return 1  # on the CPU a batch of 4 costs 2.4x the memory for no speed
        free, _ = torch.cuda.mem_get_info(self._torch_device)
        return cuda_batch_size(free, itemsize=2 if self.fp16 else 4)

    @property
    def threads(self) -> int:
        """CPU threads the model keeps busy (the pipeline gives ffmpeg and OpenCV what is left)."""
        return self._threads if self._torch_device.type == "cpu" else 0

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        if self._torch_device.type == "cpu":
            self._previous_threads = torch.get_num_threads()
            torch.set_num_threads(self._threads)
        model = IFNet()
        model.load_state_dict(load_state_dict(self._models_dir), strict=True)
        self._model = model.eval().requires_grad_(False)
        self._network = self._make_network()
        self._prepared.clear()
        logger.info("RIFE v4.25 on {} with {}, batch {}", self.device, self.choice.reason, self.batch_size)

    def _make_network(self) -> Network:
        assert self._model is not None
        if self.backend == "openvino":
            try:
                return OpenVinoNetwork(self._model, weights_sha256=self._weights_id(), cache_dir=self._cache_dir,
                                       threads=self._threads, model_scale=self.model_scale, pad_multiple=self._pad)
            except (ImportError, RuntimeError) as exc:  # a broken openvino install
                self._openvino_failed(exc)
        return self._torch_network()

    def _torch_network(self) -> TorchNetwork:
        assert self._model is not None
        if self._torch_device.type == "cpu":
            allocator.keep_freed_memory()
        return TorchNetwork(self._model, device=self._torch_device, dtype=self._dtype, model_scale=self.model_scale,
                            pad_multiple=self._pad, fast=self._torch_device.type == "cuda")

    def _openvino_failed(self, exc: Exception) -> None:
        if self.choice.explicit:
            raise EngineError(f"engine.backend = 'openvino' cannot run: {exc}; use engine.backend: auto or torch") from exc
        logger.warning("OpenVINO cannot run RIFE ({}); using torch on the CPU, about half as fast", exc)
        self.backend = "torch"

    def _weights_id(self) -> str:
        found = installed_weights(self._models_dir)
        return (found.file_sha256 or found.sha256) if found else "unknown"

    def close(self) -> None:
        self._prepared.clear()
        if self._model is None:
            return
        if self._network is not None:
            self._network.close()
        self._model = self._network = None
        if self._torch_device.type == "cuda":
            torch.cuda.empty_cache()
        else:
            allocator.release()
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
            except OpenVinoFailure as exc:
                self._openvino_failed(exc)
                self._network = self._torch_network()
                self._prepared.clear()
                continue
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
        assert self._network is not None
        first = self._frames([(p.index, p.a) for p in pairs])
        second = self._frames([(p.index + 1, p.b) for p in pairs])
        return self._network.interpolate(first, second, [p.t for p in pairs], like=pairs[0].a)

    def _frames(self, frames: list[tuple[int, np.ndarray]]) -> list[Any]:
        """The prepared form of each frame; computed once per source frame."""
        assert self._network is not None
        marks = [_fingerprint(array) for _, array in frames]
        missing: dict[int, tuple[Fingerprint, np.ndarray]] = {}
        for (index, array), mark in zip(frames, marks, strict=True):
            cached = self._prepared.get(index)
            if cached is None or cached[0] != mark:
                missing[index] = (mark, array)
        if missing:
            prepared = self._network.prepare([array for _, array in missing.values()])
            for (index, (mark, _)), item in zip(missing.items(), prepared, strict=True):
                self._prepared[index] = (mark, item)
        for index, _ in frames:
            self._prepared.move_to_end(index)
        found = [self._prepared[index][1] for index, _ in frames]
        while len(self._prepared) > self.batch_size + 2:
            self._prepared.popitem(last=False)
        return found


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

