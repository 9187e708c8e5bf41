"""Where RIFE runs: ``engine.device`` (auto | cpu | cuda | cuda:N | mps) resolved against what torch sees.

torch is imported only when the answer depends on it. Importing it costs about a second of start-up,
and the OpenVINO backend runs a cached model without it. So ``cpu`` needs no torch, and ``auto`` needs
none where the installed torch is a CPU-only build, which sees no CUDA device anyway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

from loguru import logger

from midframe.errors import DeviceError


def torch_version() -> str:
    """The installed torch's version, from its package metadata (no import)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:  # a torch built from source and put on the path
        import torch

        return str(torch.__version__)


@dataclass(frozen=True)
class Device:
    """A torch device by name, without torch: ``cpu``, ``cuda:0``, ``mps``."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


@dataclass(frozen=True)
class CudaView:
    """What torch sees of CUDA; a parameter so tests can pretend."""

    available: bool
    count: int
    build: str | None  # torch.version.cuda; None for a CPU-only torch
    version: str = field(default_factory=lambda: torch_version())  # for the messages

    @classmethod
    def current(cls) -> CudaView:
        version = torch_version()
        if sys.platform == "darwin" or version.endswith("+cpu"):
            return cls(False, 0, None, version)  # no CUDA build: nothing to ask torch
        import torch

        available = torch.cuda.is_available()
        return cls(available, torch.cuda.device_count() if available else 0, torch.version.cuda, version)

    def describe(self) -> str:
        if self.build is None:
            return f"torch {self.version} is a CPU-only build and sees no CUDA device"
        if not self.available or self.count == 0:
            return f"torch {self.version} (CUDA {self.build}) sees no CUDA device"
        names = ", ".join(f"cuda:{i}" for i in range(self.count))
        return f"torch sees {self.count} CUDA device{'s' if self.count > 1 else ''}: {names}"


def resolve_device(requested: str, cuda: CudaView | None = None, *,
                   warn: Callable[[str], None] = logger.warning) -> Device:
    """``auto`` -> CUDA when torch sees it, else the CPU with a warning (to ``warn``: the engine says it
    when it loads, not each time it is built to be checked); a missing device is an error."""
    if requested == "cpu":
        return Device("cpu")
    if requested == "mps":
        import torch

        if torch.backends.mps.is_available():
            return Device("mps")
        raise DeviceError("device mps: not available to this torch (Apple GPUs only); use auto or cpu")
    cuda = cuda or CudaView.current()
    if requested == "auto":
        if cuda.available and cuda.count > 0:
            return Device("cuda", 0)
        warn(f"RIFE runs on the CPU ({cuda.describe()}); expect about half a second per 720p frame with "
             "OpenVINO, a second with torch")
        return Device("cpu")
    index = int(requested.partition(":")[2] or 0)
    if not cuda.available or index >= cuda.count:
        raise DeviceError(f"device {requested}: not available; {cuda.describe()}. Use device: auto or cpu")
    return Device("cuda", index)


def cpu_threads() -> int:
    """One inference thread per usable physical core (hyper-threads slow convolutions down)."""
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
