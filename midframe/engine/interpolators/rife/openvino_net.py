"""RIFE on the CPU through OpenVINO: IFNet converted once per frame size, cached on disk, run as two graphs.

``prepare`` takes a decoded HxWx3 frame (uint8 or uint16) straight from the reader and returns its
seven channels (image and encoder features, padded); ``forward`` takes two prepared frames and the
time ``t`` (an input, so 3x and 4x are direct) and returns the finished HxWx3 frame in the source's
dtype. Everything between (scaling to 0..1, padding, clamping, rounding, layout) is inside the graphs,
so no torch operation runs per frame. The graphs are exported from the same ``IFNet`` the torch backend
runs (``torch.export`` then ``openvino.convert_model``, in ``openvino_export``), in float32: the two
agree to about 1e-5. Only that conversion needs torch: a run whose graphs are cached never imports it
(about a second less start-up) and never loads the weights.

Converting takes 10-50 s, so the converted graphs are kept in ``cache_dir``, one folder per key (weights
hash, OpenVINO, torch and midframe model code versions, frame size, dtype, model_scale), written into a
temporary folder and renamed into place, so a killed conversion never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger

from midframe.engine.interpolators.rife.devices import torch_version
from midframe.errors import EngineError
from midframe.fs.safe_write import atomic_write

if TYPE_CHECKING:
    from midframe.engine.interpolators.rife.model import IFNet

_TIMES_FILE = "compile-times.json"
# Frames up to this many (padded) pixels run on several streams at once (``streams``): at 720p on two
# cores two one-thread inferences side by side make 4-12% more frames than one two-thread inference,
# whose threads wait for each other at every step, for about 0.4 GiB more memory. Larger frames keep
# one stream, so 4K needs no more memory than one inference does.
STREAMS_UP_TO_PIXELS = 1920 * 1088
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


def code_version() -> str:
    """Changes whenever the network's code or this conversion changes, so stale graphs are not reused."""
    digest = hashlib.sha256()
    for module in ("model.py", "geometry.py", "openvino_export.py", Path(__file__).name):
        digest.update(Path(__file__).with_name(module).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(*, weights_sha256: str, openvino_version: str, size: tuple[int, int], dtype: np.dtype,
              model_scale: float) -> dict[str, Any]:
    return {
        "weights_sha256": weights_sha256,
        "openvino": openvino_version,
        "torch": torch_version(),
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
    prepare: list[Any]  # openvino InferRequests, one per stream
    forward: list[Any]
    pad: tuple[int, int]


def run_requests(requests: Sequence[Any], inputs: Sequence[list[np.ndarray]]) -> list[np.ndarray]:
    """Each input set through a request, as many at once as there are requests; each first output, copied.

    Every started request is waited for, even when one fails, so none is left running.
    """
    out: list[np.ndarray] = []
    for start in range(0, len(inputs), len(requests)):
        started = []
        try:
            for request, item in zip(requests, inputs[start : start + len(requests)]):
                request.start_async(item, share_inputs=True)
                started.append(request)
        finally:
            failures = []
            for request in started:
                try:
                    request.wait()
                except RuntimeError as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]
        out.extend(request.get_output_tensor(0).data.copy() for request in started)
    return out


class OpenVinoNetwork:
    """IFNet as OpenVINO graphs, compiled on first use for each frame size and dtype."""

    name = "openvino"

    def __init__(self, model: Callable[[], IFNet], *, weights_sha256: str, cache_dir: Path, threads: int,
                 model_scale: float, pad_multiple: int, streams: int = 1,
                 say: Callable[[str], None] = logger.info,
                 preparing: Callable[[str | None], None] = lambda text: None) -> None:
        self._ov = import_openvino()
        self._core = self._ov.Core()
        self._model = model  # loads the weights; called only to convert a size not cached yet
        self._weights = weights_sha256
        self._cache_dir = Path(cache_dir)
        self._threads = threads
        self._streams = max(1, min(streams, threads))
        self._model_scale = model_scale
        self._multiple = pad_multiple
        self._say = say
        self._preparing = preparing  # a status line: what this one-time work is and how long it takes
        self._graphs: dict[tuple[int, int, str], _Graphs] = {}

    # --- the Network interface (see runner) ---

    def prepare(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        graphs = self._for(frames[0])
        return run_requests(graphs.prepare, [[frame[None]] for frame in frames])

    def interpolate(self, first: Sequence[np.ndarray], second: Sequence[np.ndarray], times: Sequence[float],
                    like: np.ndarray) -> list[np.ndarray]:
        graphs = self._for(like)
        steps = [np.full((1, 1, 1, 1), t, dtype=np.float32) for t in times]
        inputs = [[a, b, step] for a, b, step in zip(first, second, steps, strict=True)]
        return [frame[0] for frame in run_requests(graphs.forward, inputs)]

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
        pixels = (size[0] + pad[0]) * (size[1] + pad[1])
        streams = self._streams if pixels <= STREAMS_UP_TO_PIXELS else 1
        if not (entry / "key.json").is_file():
            self._convert(entry, key, size, dtype, pad)
        try:
            prepare, forward = self._compile(entry, streams)
        except RuntimeError as exc:  # a damaged entry: drop it and convert once more
            logger.warning("cached OpenVINO graphs in {} are unreadable ({}); converting again", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            self._convert(entry, key, size, dtype, pad)
            try:
                prepare, forward = self._compile(entry, streams)
            except RuntimeError as again:
                raise OpenVinoFailure(f"OpenVINO could not compile RIFE for {size[1]}x{size[0]}: {again}") from again
        return _Graphs([prepare.create_infer_request() for _ in range(streams)],
                       [forward.create_infer_request() for _ in range(streams)], pad)

    def _compile(self, entry: Path, streams: int) -> tuple[Any, Any]:
        # Unpinned: the decoder, the scene thumbnails and the encoder share these cores, and a pinned
        # inference thread whose core they hold stalls its whole parallel step (measured at 720p with one
        # stream: whole process about 4% faster by the median of four runs, and steadier).
        # OpenVINO keeps what it compiled beside the graphs (CACHE_DIR, one blob per graph and settings):
        # the next job imports it in about half the time compiling the graphs again takes (0.2 s against
        # 0.4 s at 720p); it compiles anew when a blob does not fit or cannot be read.
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": self._threads,
                  "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT", "NUM_STREAMS": streams,
                  "ENABLE_CPU_PINNING": False, "CACHE_DIR": str(entry / "compiled")}
        return tuple(
            self._core.compile_model(str(entry / f"{name}.xml"), "CPU", config)
            for name in ("prepare", "forward")
        )

    def _convert(self, entry: Path, key: dict[str, Any], size: tuple[int, int], dtype: np.dtype,
                 pad: tuple[int, int]) -> None:
        height, width = size
        model = self._model()  # a WeightsError (missing, corrupt) comes before the promise below
        guess = self._guess_s()
        self._say(f"compiling RIFE for {width}x{height} with OpenVINO (once per size, ~{guess:.0f} s)")
        self._preparing(f"preparing RIFE for {width}x{height} (once per size, about {guess:.0f} s)")
        started = time.monotonic()
        try:
            store_atomically(entry, lambda folder: self._write(folder, model, key, size, dtype, pad))
        except OSError as exc:
            raise OpenVinoFailure(f"cannot write the OpenVINO cache in {self._cache_dir}: {exc.strerror or exc}") from exc
        except (RuntimeError, TypeError, ValueError, AssertionError) as exc:  # torch.export / convert failures
            raise OpenVinoFailure(f"OpenVINO could not convert RIFE for {width}x{height}: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        finally:
            self._preparing(None)
        seconds = time.monotonic() - started
        self._record_s(seconds)
        self._say(f"RIFE for {width}x{height} compiled with OpenVINO in {seconds:.0f} s (cached in {entry.parent})")

    def _write(self, folder: Path, model: IFNet, key: dict[str, Any], size: tuple[int, int], dtype: np.dtype,
               pad: tuple[int, int]) -> None:
        from midframe.engine.interpolators.rife.openvino_export import write_graphs

        write_graphs(self._ov, model, folder, key=key, size=size, dtype=dtype, pad=pad,
                     model_scale=self._model_scale)

    def _guess_s(self) -> float:
        try:
            return float(json.loads((self._cache_dir / _TIMES_FILE).read_text(encoding="utf-8"))["last_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return _GUESS_S

    def _record_s(self, seconds: float) -> None:
        path = self._cache_dir / _TIMES_FILE
        try:
            atomic_write(path, json.dumps({"last_s": round(seconds, 1)}) + "\n")
        except OSError as exc:  # only the next estimate suffers
            logger.debug("could not record the OpenVINO compile time in {}: {}", path, exc)
