"""Engines by name: a plain registry of factories, imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from loguru import logger

from midframe.config import Config, EngineConfig
from midframe.engine.interpolators.base import FramePair, Interpolator
from midframe.errors import ConfigError, WeightsError

__all__ = ["ENGINES", "FramePair", "Interpolator", "check_engine", "create_interpolator", "engine_chosen"]

Factory = Callable[[EngineConfig, Path], Interpolator]

# name -> "module:function"; the function takes (settings, models_dir) and returns an unloaded engine.
ENGINES: dict[str, str] = {
    "auto": "midframe.engine.interpolators.auto:create",  # per scene, the better of rife and dis (chooser)
    "rife": "midframe.engine.interpolators.rife:create",
    "dis": "midframe.engine.interpolators.dis:create",
    "blend": "midframe.engine.interpolators.blend:create",
}

FALLBACK_ENGINE = "dis"


def _factory(name: str) -> Factory:
    try:
        target = ENGINES[name]
    except KeyError:
        raise ConfigError(f"engine.name = {name!r}: unknown engine; choose one of {', '.join(ENGINES)}",
                          key="engine.name") from None
    module_name, function_name = target.split(":")
    return getattr(import_module(module_name), function_name)


def engine_chosen(config: Config) -> bool:
    """Whether the config file names the engine (a default may fall back; a choice may not)."""
    return "name" in config.engine.model_fields_set


def create_interpolator(settings: EngineConfig, *, models_dir: Path, fallback: bool = False) -> Interpolator:
    """Build (not load) the engine ``settings.name``.

    With ``fallback`` (only where nobody chose the engine: the default), a neural engine whose weights
    are missing is replaced by the classical one, with a warning. An engine someone named is what
    runs, or this raises (``WeightsError`` says how to get the weights, ``DeviceError`` what the
    device lacks).
    """
    try:
        return _factory(settings.name)(settings, models_dir)
    except WeightsError as exc:
        if not fallback or settings.name == FALLBACK_ENGINE:
            raise
        # The engine's own error already says how to get its weights.
        # once per process: the settings check and every job build the engine, and the answer is the same
        logger.bind(once=True).warning("{}; no engine was chosen, so the {} engine is used instead (name one in "
                                       "the config or with --engine to make this an error)", exc, FALLBACK_ENGINE)
        return _factory(FALLBACK_ENGINE)(settings, models_dir)


def check_engine(settings: EngineConfig, *, models_dir: Path, fallback: bool = False) -> str:
    """The name of the engine that would run, built exactly as a job builds it (weights found, device
    present) but not loaded; raises what building it raises."""
    engine = create_interpolator(settings, models_dir=models_dir, fallback=fallback)
    engine.close()
    return engine.name
