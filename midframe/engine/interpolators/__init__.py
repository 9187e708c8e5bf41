"""Engines by name: a plain registry of factories, imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from loguru import logger

from midframe.config import EngineConfig
from midframe.engine.interpolators.base import FramePair, Interpolator
from midframe.errors import ConfigError, WeightsError

__all__ = ["ENGINES", "FramePair", "Interpolator", "create_interpolator"]

Factory = Callable[[EngineConfig, Path], Interpolator]

# name -> "module:function"; the function takes (settings, models_dir) and returns an unloaded engine.
ENGINES: dict[str, str] = {
    "rife": "midframe.engine.interpolators.rife:create",
    "dis": "midframe.engine.interpolators.dis:create",
    "blend": "midframe.engine.interpolators.blend:create",
}

FALLBACK_ENGINE = "dis"


def _factory(name: str) -> Factory:
    try:
        target = ENGINES[name]
    except KeyError:
        raise ConfigError(f"engine.name = {name!r}: unknown engine; choose one of {', '.join(ENGINES)}") from None
    module_name, function_name = target.split(":")
    return getattr(import_module(module_name), function_name)


def create_interpolator(settings: EngineConfig, *, models_dir: Path, fallback: bool = False) -> Interpolator:
    """Build (not load) the engine ``settings.name``.

    With ``fallback``, a neural engine whose weights are missing is replaced by the classical one,
    with a warning that repeats the engine's error (which says how to get the weights).
    """
    try:
        return _factory(settings.name)(settings, models_dir)
    except WeightsError as exc:
        if not fallback or settings.name == FALLBACK_ENGINE:
            raise
        # The engine's own error already says how to get its weights.
        logger.warning("{}; using the {} engine instead", exc, FALLBACK_ENGINE)
        return _factory(FALLBACK_ENGINE)(settings, models_dir)
