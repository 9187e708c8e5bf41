"""Which runtime runs RIFE: ``engine.backend`` (auto | torch | openvino) resolved for a device.

Pure logic: what is installed is passed in, so tests choose it. ``auto`` takes OpenVINO on the CPU where
the package imports (about 2x faster than torch eager there, see the README's speed section) and torch
everywhere else; torch is always there to fall back to. A backend named explicitly is never swapped for
another: if it cannot run, that is an error naming ``engine.backend``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

from midframe.errors import ConfigError

Backend = Literal["torch", "openvino"]
BACKENDS: tuple[Backend, ...] = ("torch", "openvino")
# What `pip install` needs for each backend that is not always there.
PACKAGES = {"openvino": "openvino"}


def importable(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Choice:
    backend: Backend
    explicit: bool  # named in the settings: failures are errors, not fallbacks
    reason: str  # for the log line


def choose_backend(requested: str, *, device_type: str, openvino_installed: bool) -> Choice:
    """The backend for ``requested`` on a torch device type (``cpu``, ``cuda``, ``mps``)."""
    if requested == "auto":
        if device_type != "cpu":
            return Choice("torch", False, f"torch on {device_type}")
        if openvino_installed:
            return Choice("openvino", False, "OpenVINO on the CPU")
        return Choice("torch", False, "torch on the CPU (the openvino package is not installed: pip install openvino)")
    if requested == "torch":
        return Choice("torch", True, "torch (engine.backend: torch)")
    if requested == "openvino":
        if device_type != "cpu":
            raise ConfigError(
                f"engine.backend = 'openvino' runs on the CPU only, but engine.device resolved to {device_type}; "
                "use engine.backend: auto or torch, or engine.device: cpu", key="engine.backend"
            )
        if not openvino_installed:
            raise ConfigError(
                "engine.backend = 'openvino': the openvino package is not installed "
                "(pip install openvino), or use engine.backend: auto or torch", key="engine.backend"
            )
        return Choice("openvino", True, "OpenVINO on the CPU (engine.backend: openvino)")
    raise ConfigError(f"engine.backend = {requested!r}: unknown; choose auto, {', '.join(BACKENDS)}",
                      key="engine.backend")
