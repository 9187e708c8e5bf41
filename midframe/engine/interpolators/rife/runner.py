"""The ``rife`` interpolator: batches of frame pairs through IFNet v4.25 on the CPU or a CUDA device.

The interpolator owns what every runtime shares: device and backend choice, batching, the cache of
prepared frames (each source frame's encoder features are computed once and reused by the pairs on
both sides of it), out-of-memory handling, and test-time augmentation (``engine.quality: high``, see
``tta``: each batch runs once per pass, so every backend gets it). A ``Network`` (``torch_net``, ``openvino_net``) runs IFNet.
torch and the weights load when a network needs them: OpenVINO with cached graphs needs neither.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from loguru import logger

import midframe.engine.interpolators.rife.allocator as allocator
import midframe.engine.interpolators.rife.tta as tta
from midframe.engine.interpolators.base import FramePair, Preparing
from midframe.engine.interpolators.rife.backends import choose_backend, importable
from midframe.engine.interpolators.rife.devices import CudaView, cpu_threads, resolve_device
from midframe.engine.interpolators.rife.geometry import pad_multiple
from midframe.engine.interpolators.rife.openvino_net import OpenVinoFailure, OpenVinoNetwork
from midframe.engine.interpolators.rife.weights import installed_weights
from midframe.engine.settings import EngineConfig
from midframe.errors import EngineError, OutOfMemory

if TYPE_CHECKING:
    from midframe.engine.interpolators.rife.model import IFNet
    from midframe.engine.interpolators.rife.torch_net import TorchNetwork

_MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
Fingerprint = tuple[tuple[int, ...], str, bytes]
# A prepared frame's key: its source frame index, and whether it is the mirrored picture.
FrameKey = tuple[int, bool]


def _is_out_of_memory(exc: RuntimeError) -> bool:
    torch = sys.modules.get("torch")  # not imported: not torch's error
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)  # the CPU allocator raises a plain RuntimeError
    return "out of memory" in text or "can't allocate memory" in text


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
    uses_opencv = False  # torch's or OpenVINO's threads; OpenCV gets what the pipeline leaves

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
        self._warnings: list[str] = []  # said by load(): a job loads its engine once, a check builds it too
        self._device = resolve_device(settings.device, cuda, warn=self._warnings.append)
        self.device = str(self._device)
        on_cuda = self._device.type == "cuda"
        if settings.fp16 is True and not on_cuda:
            self._warnings.append(f"fp16 is for CUDA devices; RIFE uses float32 on {self.device}")
        self.fp16 = on_cuda and settings.fp16 in ("auto", True)
        self.model_scale = settings.model_scale
        self.passes = tta.passes(settings.tta if settings.quality == "high" else 1)
        self._pad = pad_multiple(settings.model_scale)
        installed = importable("openvino") if openvino_installed is None else openvino_installed
        self.choice = choose_backend(settings.backend, device_type=self._device.type,
                                     openvino_installed=installed)
        self.backend = self.choice.backend
        self._threads = threads if threads is not None else cpu_threads()
        self._auto_batch = settings.batch_size == "auto"
        self.batch_size = self._batch_size(settings.batch_size)  # lowered for good after an out-of-memory
        self._previous_threads: int | None = None
        self.on_preparing: Preparing | None = None  # set by the frame loop (see base)
        self._model: IFNet | None = None
        self._network: Network | None = None
        # (frame index, mirrored) -> (fingerprint, prepared frame); the newest few frames only
        self._prepared: OrderedDict[FrameKey, tuple[Fingerprint, Any]] = OrderedDict()

    def _batch_size(self, requested: int | str) -> int:
        if requested != "auto":
            return int(requested)
        if self.backend == "openvino":
            return self._openvino_streams()  # one pair per stream
        if self._device.type != "cuda":
            return 1  # torch on the CPU: a batch of 4 costs 2.4x the memory for no speed
        import torch

        from midframe.engine.interpolators.rife.torch_net import cuda_batch_size

        free, _ = torch.cuda.mem_get_info(str(self._device))
        return cuda_batch_size(free, itemsize=2 if self.fp16 else 4)

    @property
    def threads(self) -> int:
        """CPU threads the model keeps busy (the pipeline gives ffmpeg and OpenCV what is left)."""
        return self._threads if self._device.type == "cpu" else 0

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self) -> None:
        if self._network is not None:
            return
        for warning in self._warnings:  # about this machine: once per process, not once per job
            logger.bind(once=True).warning(warning)
        self._network = self._make_network()
        self._prepared.clear()
        logger.info("RIFE v4.25 on {} with {}, batch {}{}", self.device, self.choice.reason, self.batch_size,
                    f", quality high ({len(self.passes)} passes a frame)" if len(self.passes) > 1 else "")

    def _make_network(self) -> Network:
        if self.backend == "openvino":
            try:
                # The weights load only if a frame size has no cached graphs yet (see openvino_net).
                return OpenVinoNetwork(self._ifnet, weights_sha256=self._weights_id(), cache_dir=self._cache_dir,
                                       threads=self._threads, model_scale=self.model_scale, pad_multiple=self._pad,
                                       streams=min(self._openvino_streams(), self.batch_size),
                                       preparing=self._preparing)
            except (ImportError, RuntimeError) as exc:  # a broken openvino install
                self._openvino_failed(exc)
        return self._torch_network()

    def _preparing(self, text: str | None) -> None:
        if self.on_preparing is not None:
            self.on_preparing(text)

    def _openvino_streams(self) -> int:
        """Two inferences side by side where there are two threads for them (see openvino_net)."""
        return min(2, self._threads)

    def _ifnet(self) -> IFNet:
        """The network in torch with the installed weights, loaded on first use."""
        if self._model is not None:
            return self._model
        import torch

        from midframe.engine.interpolators.rife.model import IFNet
        from midframe.engine.interpolators.rife.weights import load_state_dict

        if self._device.type == "cpu":
            self._previous_threads = torch.get_num_threads()
            torch.set_num_threads(self._threads)
        model = IFNet()
        model.load_state_dict(load_state_dict(self._models_dir), strict=True)
        self._model = model.eval().requires_grad_(False)
        return self._model

    def _torch_network(self) -> TorchNetwork:
        import torch

        from midframe.engine.interpolators.rife.torch_net import TorchNetwork

        model = self._ifnet()
        if self._device.type == "cpu":
            allocator.keep_freed_memory()
        return TorchNetwork(model, device=torch.device(str(self._device)),
                            dtype=torch.float16 if self.fp16 else torch.float32, model_scale=self.model_scale,
                            pad_multiple=self._pad, fast=self._device.type == "cuda")

    def _openvino_failed(self, exc: Exception) -> None:
        if self.choice.explicit:
            raise EngineError(f"engine.backend = 'openvino' cannot run: {exc}; use engine.backend: auto or torch") from exc
        logger.warning("OpenVINO cannot run RIFE ({}); using torch on the CPU, about half as fast", exc)
        self.backend = "torch"
        if self._auto_batch:
            self.batch_size = self._batch_size("auto")

    def _weights_id(self) -> str:
        found = installed_weights(self._models_dir)
        return (found.file_sha256 or found.sha256) if found else "unknown"

    def close(self) -> None:
        self._prepared.clear()
        if self._network is None and self._model is None:
            return
        if self._network is not None:
            self._network.close()
        self._model = self._network = None
        if self._device.type != "cuda":
            allocator.release()
        torch = sys.modules.get("torch")  # not imported: nothing of torch's to give back
        if torch is None:
            return
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
        if self._previous_threads is not None:
            torch.set_num_threads(self._previous_threads)
            self._previous_threads = None

    # --- work ------------------------------------------------------------------------------------

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        if self._network is None:
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
        if self._device.type == "cuda":
            import torch

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
        """The batch through the network once per pass (``tta``), the passes' frames averaged."""
        assert self._network is not None
        # Each side's frames prepared once per orientation: the time-reversed passes use the same ones.
        sides = {mirrored: (self._frames([(p.index, p.a) for p in pairs], mirrored=mirrored),
                            self._frames([(p.b_index, p.b) for p in pairs], mirrored=mirrored))
                 for mirrored in dict.fromkeys(how.mirrored for how in self.passes)}
        made: list[list[np.ndarray]] = []
        for how in self.passes:
            first, second = sides[how.mirrored]
            times = [p.t for p in pairs]
            if how.reversed:
                first, second, times = second, first, [1.0 - t for t in times]
            made.append(tta.undo(self._network.interpolate(first, second, times, like=pairs[0].a), how))
        return [tta.mean_frames(frames) for frames in zip(*made, strict=True)]

    def _frames(self, frames: list[tuple[int, np.ndarray]], *, mirrored: bool = False) -> list[Any]:
        """The prepared form of each frame (or of its mirror image); computed once per source frame."""
        assert self._network is not None
        keys = [(index, mirrored) for index, _ in frames]
        marks = [_fingerprint(array) for _, array in frames]
        missing: dict[FrameKey, tuple[Fingerprint, np.ndarray]] = {}
        for key, (_, array), mark in zip(keys, frames, marks, strict=True):
            cached = self._prepared.get(key)
            if cached is None or cached[0] != mark:
                missing[key] = (mark, array)
        if missing:
            pictures = [tta.mirror(array) if mirrored else array for _, array in missing.values()]
            prepared = self._network.prepare(pictures)
            for (key, (mark, _)), item in zip(missing.items(), prepared, strict=True):
                self._prepared[key] = (mark, item)
        for key in keys:
            self._prepared.move_to_end(key)
        found = [self._prepared[key][1] for key in keys]
        mirrors = 2 if any(how.mirrored for how in self.passes) else 1
        while len(self._prepared) > (self.batch_size + 2) * mirrors:
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

