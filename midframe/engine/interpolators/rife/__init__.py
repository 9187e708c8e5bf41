"""RIFE v4.25: the neural interpolator (IFNet in PyTorch), its weights, and the runner.

``create`` is the registry's factory. It needs installed weights (``midframe models fetch``) and raises
``WeightsError`` without them, so the registry can fall back to the classical engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from midframe.engine.interpolators.rife.weights import ensure_weights, installed_weights
from midframe.engine.settings import EngineConfig
from midframe.errors import WeightsError

if TYPE_CHECKING:
    from midframe.engine.interpolators.rife.runner import RifeInterpolator

__all__ = ["create", "ensure_weights"]


def create(settings: EngineConfig, models_dir: Path) -> RifeInterpolator:
    """An unloaded ``rife`` interpolator; ``WeightsError`` when ``models_dir`` holds no weights."""
    if installed_weights(models_dir) is None:
        raise WeightsError(f"no RIFE weights installed in {models_dir} (`midframe models fetch` installs them)")
    from midframe.engine.interpolators.rife.runner import RifeInterpolator

    return RifeInterpolator(settings, models_dir)
