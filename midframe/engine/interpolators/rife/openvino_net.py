"""RIFE on the CPU through OpenVINO: IFNet converted once per frame size, cached on disk, run as two graphs.

``prepare`` takes a decoded HxWx3 frame (uint8 or uint16) straight from the reader and returns its
seven channels (image and encoder features, padded); ``forward`` takes two prepared frames and the
time ``t`` (an input, so 3x and 4x are direct) and returns the finished HxWx3 frame in the source's
dtype. Everything between (scaling to 0..1, padding, clamping, rounding, layout) is inside the graphs,
so no torch operation runs per frame. The graphs are exported from the same ``IFNet`` the torch backend
runs (``torch.export`` then ``openvino.convert_model``), in float32: the two agree to about 1e-5.

Converting takes 10-50 s, so the converted graphs are kept in ``cache_dir``, one folder per key (weights
hash, OpenVINO, torch and midframe model code versions, frame size, dtype, model_scale), written into a
temporary folder and renamed into place, so a killed conversion never leaves a half-written entry.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from midframe.engine.interpolators.rife import model as model_module
from midframe.engine.interpolators.rife.model import BackWarp, IFNet
from midframe.errors import EngineError

_TOP = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_TIMES_FILE = "compile-times.json"
_GUESS_S = 30.0  # said before the first conversion on a machine; later ones use the last one measured


def import_openvino() -> Any:
    """``import openvino`` without its usage telemetry.

    OpenVINO's model converter reports usage to Google Analytics unless the user opted out with its
    ``opt_in_out`` tool; midframe sends nothing anywhere. The converter falls back to its own no-op stub
    when the ``openvino_telemetry`` package cannot be imported, so that package is hidden from this
    process before openvino is first imported.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


class OpenVinoFailure(EngineError):
    """OpenVINO could not convert or compile the network (the caller may fall back to torch)."""


class _PrepareGraph(nn.Module):
    def __init__(self, model: IFNet, *, pad: tuple[int, int], top: float) -> None:
        super().__init__()
        self.model, self.pad, self.unit = model, pad, 1.0 / top

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # 1 x 3 x h x w, 0..top
        return self.model.prepare(F.pad(image * self.unit, (0, self.pad[1], 0, self.pad[0])))


class _ForwardGraph(nn.Module):
    def __init__(self, model: IFNet, *, size: tuple[int, int], top: float, model_scale: float) -> None:
        super().__init__()
        self.model, self.size, self.top, self.model_scale = model, size, top, model_scale

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(frame0, frame1, t, model_scale=self.model_scale)[:, :, : self.size[0], : self.size[1]]
        return torch.round(out.clamp(0.0, 1.0) * self.top)


def code_version() -> str:
    """Changes whenever the network's code or this conversion changes, so stale graphs are not reused."""
    digest = hashlib.sha256()
    for module in (model_module.__file__, __file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(*, weights_sha256: str, openvino_version: str, size: tuple[int, int], dtype: np.dtype,
              model_scale: float) -> dict[str, Any]:
    return {
        "weights_sha256": weights_sha256,
        "openvino": openvino_version,
        "torch": torch.__version__,
        "code": code_version(),
        "height": size[0],
        "width": size[1],
        "dtype": np.dtype(dtype).name,
        "model_scale": model_scale,
    }


def entry_name(key: dict[str, Any]) -> str:
    readable = f"{key['width']}x{key['height']}-{key['dtype']}-s{key['model_scale']:g}"
    return f"{readable}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}"


def store_atomically(entry: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(folder)`` into a fresh temporary folder beside ``entry``, then rename it to ``entry``.

    If another process stored the same entry meanwhile, its copy is kept and ours is dropped.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.with_name(f".{entry.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    partial.mkdir()
    try:
        write(partial)
        try:
            os.replace(partial, entry)
        except OSError:
            if not (entry / "key.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@dataclass
class _Graphs:
    prepare: Any  # openvino InferRequest
    forward: Any
    pad: tuple[int, int]


class OpenVinoNetwork:
    """IFNet as OpenVINO graphs, compiled on first use for each frame size and dtype."""

    name = "openvino"

    def __init__(self, model: IFNet, *, weights_sha256: str, cache_dir: Path, threads: int, model_scale: float,
                 pad_multiple: int, say: Callable[[str], None] = logger.info) -> None:
        self._ov = import_openvino()
        self._core = self._ov.Core()
        self._model = model
        self._weights = weights_sha256
        self._cache_dir = Path(cache_dir)
        # Unpinned: the decoder, the scene thumbnails and the encoder share these cores, and a pinned
        # inference thread whose core they hold stalls the whole parallel step (measured at 720p: whole
        # process about 4% faster by the median of four runs, and steadier).
        self._config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
        self._model_scale = model_scale
        self._multiple = pad_multiple
        self._say = say
        self._graphs: dict[tuple[int, int, str], _Graphs] = {}

    # --- the Network interface (see runner) ---

    def prepare(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        graphs = self._for(frames[0])
        return [graphs.prepare.infer([frame[None]], share_inputs=True)[0] for frame in frames]

    def interpolate(self, first: Sequence[np.ndarray], second: Sequence[np.ndarray], times: Sequence[float],
                    like: np.ndarray) -> list[np.ndarray]:
        graphs = self._for(like)
        out = []
        for a, b, t in zip(first, second, times, strict=True):
            step = np.full((1, 1, 1, 1), t, dtype=np.float32)
            out.append(graphs.forward.infer([a, b, step], share_inputs=True)[0][0])
        return out

    def close(self) -> None:
        self._graphs.clear()

    # --- conversion and cache ---

    def _for(self, frame: np.ndarray) -> _Graphs:
        height, width = frame.shape[:2]
        found = self._graphs.get((height, width, frame.dtype.str))
        if found is None:
            if len(self._graphs) >= 2:  # a daemon meets many sizes; keep the latest ones only
                self._graphs.pop(next(iter(self._graphs)))
            found = self._graphs[(height, width, frame.dtype.str)] = self._load((height, width), frame.dtype)
        return found

    def _load(self, size: tuple[int, int], dtype: np.dtype) -> _Graphs:
        key = cache_key(weights_sha256=self._weights, openvino_version=self._ov.__version__, size=size,
                        dtype=dtype, model_scale=self._model_scale)
        entry = self._cache_dir / entry_name(key)
        pad = (-size[0] % self._multiple, -size[1] % self._multiple)
        if not (entry / "key.json").is_file():
            self._convert(entry, key, size, dtype, pad)
        try:
            prepare, forward = self._compile(entry)
        except RuntimeError as exc:  # a damaged entry: drop it and convert once more
            logger.warning("cached OpenVINO graphs in {} are unreadable ({}); converting again", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            self._convert(entry, key, size, dtype, pad)
            try:
                prepare, forward = self._compile(entry)
            except RuntimeError as again:
                raise OpenVinoFailure(f"OpenVINO could not compile RIFE for {size[1]}x{size[0]}: {again}") from again
        return _Graphs(prepare.create_infer_request(), forward.create_infer_request(), pad)

    def _compile(self, entry: Path) -> tuple[Any, Any]:
        return tuple(  # type: ignore[return-value]
            self._core.compile_model(self._core.read_model(str(entry / f"{name}.xml")), "CPU", self._config)
            for name in ("prepare", "forward")
        )

    def _convert(self, entry: Path, key: dict[str, Any], size: tuple[int, int], dtype: np.dtype,
                 pad: tuple[int, int]) -> None:
        height, width = size
        self._say(f"compiling RIFE for {width}x{height} with OpenVINO (once per size, ~{self._guess_s():.0f} s)")
        started = time.monotonic()
        try:
            store_atomically(entry, lambda folder: self._write(folder, key, size, dtype, pad))
        except OSError as exc:
            raise OpenVinoFailure(f"cannot write the OpenVINO cache in {self._cache_dir}: {exc.strerror or exc}") from exc
        except (RuntimeError, TypeError, ValueError, AssertionError) as exc:  # torch.export / convert failures
            raise OpenVinoFailure(f"OpenVINO could not convert RIFE for {width}x{height}: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        seconds = time.monotonic() - started
        self._record_s(seconds)
        self._say(f"RIFE for {width}x{height} compiled with OpenVINO in {seconds:.0f} s (cached in {entry.parent})")

    def _write(self, folder: Path, key: dict[str, Any], size: tuple[int, int], dtype: np.dtype,
               pad: tuple[int, int]) -> None:
        ov = self._ov
        from openvino.preprocess import PrePostProcessor

        top = _TOP[np.dtype(dtype)]
        element = ov.Type.u8 if np.dtype(dtype) == np.uint8 else ov.Type.u16
        padded = (size[0] + pad[0], size[1] + pad[1])
        image = torch.zeros(1, 3, *size)
        frames = (torch.zeros(1, 7, *padded), torch.ones(1, 7, *padded), torch.full((1, 1, 1, 1), 0.5))
        # Tracing fills the warp's grid cache with placeholder tensors: trace a copy with its own cache.
        traced = copy.deepcopy(self._model)
        traced.warp = BackWarp()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations, not ours
            prepare = ov.convert_model(torch.export.export(_PrepareGraph(traced, pad=pad, top=top), (image,)))
            forward = ov.convert_model(torch.export.export(
                _ForwardGraph(traced, size=size, top=top, model_scale=self._model_scale), frames))
        prepare.reshape({prepare.inputs[0]: ov.PartialShape(list(image.shape))})
        forward.reshape({port: ov.PartialShape(list(x.shape)) for port, x in zip(forward.inputs, frames, strict=True)})
        steps = PrePostProcessor(prepare)  # the decoded frame as it comes: 1 x h x w x 3 integers
        steps.input().tensor().set_element_type(element).set_layout(ov.Layout("NHWC"))
        steps.input().model().set_layout(ov.Layout("NCHW"))
        steps.input().preprocess().convert_element_type(ov.Type.f32)
        prepare = steps.build()
        steps = PrePostProcessor(forward)  # and back: rounded values to the frame's dtype, channels last
        steps.output().model().set_layout(ov.Layout("NCHW"))
        steps.output().tensor().set_element_type(element).set_layout(ov.Layout("NHWC"))
        forward = steps.build()
        # Weights stay float32: save_model's default fp16 compression costs ~50 dB of agreement with torch.
        ov.save_model(prepare, str(folder / "prepare.xml"), compress_to_fp16=False)
        ov.save_model(forward, str(folder / "forward.xml"), compress_to_fp16=False)
        (folder / "key.json").write_text(json.dumps(key, indent=2) + "\n", encoding="utf-8")

    def _guess_s(self) -> float:
        try:
            return float(json.loads((self._cache_dir / _TIMES_FILE).read_text(encoding="utf-8"))["last_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return _GUESS_S

    def _record_s(self, seconds: float) -> None:
        path = self._cache_dir / _TIMES_FILE
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            partial.write_text(json.dumps({"last_s": round(seconds, 1)}) + "\n", encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:  # only the next estimate suffers
            logger.debug("could not record the OpenVINO compile time in {}: {}", path, exc)
