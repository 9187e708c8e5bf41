"""Engines by name: the one list of engines, their weights and capabilities; each imported only when chosen.

To add an engine: write a module with a ``create(settings, models_dir)`` factory that returns an unloaded
``Interpolator`` (``base``), and add its ``EngineSpec`` to ``ENGINES``. The config's ``engine.name``, the
CLI's ``--engine`` choices, ``midframe models fetch|list|import`` (where it has a ``WeightsProvider``) and
the daemon's weights preparation all read this list; ``tests/test_engine_contract.py`` runs every engine
in it through the protocol's contract.

This module imports no engine (only ``base``, which needs no numpy at run time) and not the engine's
settings, which import it to validate ``engine.name`` against ``ENGINE_NAMES``: the settings may depend on
the list, and the list never on the settings (they are named for type checking only), so there is no circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, cast

from loguru import logger

from midframe.engine.interpolators.base import FramePair, Interpolator, Preparing, WeightsProvider
from midframe.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from midframe.engine.settings import EngineConfig

__all__ = [
    "ENGINES",
    "ENGINE_NAMES",
    "Capabilities",
    "EngineSpec",
    "FramePair",
    "Interpolator",
    "Preparing",
    "WeightsProvider",
    "check_engine",
    "create_interpolator",
    "engine_chosen",
    "spec_of",
    "weights_providers",
]

Factory = Callable[["EngineConfig", Path], Interpolator]


@dataclass(frozen=True)
class Capabilities:
    """What an engine is, known before it is built. What a built engine chose (its batch size, threads,
    backend) it says through the ``Interpolator`` protocol; ``tests/test_engine_contract`` holds each
    engine to what it declares here."""

    # Building it without its weights raises WeightsError (the registry may then fall back to dis).
    needs_weights: bool = False
    # With engine.batch_size auto it picks its own batch_size at load (else the pipeline's default).
    chooses_batch: bool = False
    # Keeps per-frame work keyed by FramePair.index across pairs (checked against the frame's content).
    reuses_frames: bool = False
    # May do long one-time work at a new frame size, announced through ``on_preparing``.
    prepares_per_size: bool = False
    # Other engines it runs (auto): their weights are its weights.
    runs: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineSpec:
    """One engine: how to build it, where its weights come from, what it can do.

    ``factory`` and ``weights`` are ``"module:attribute"`` references, imported on use: the factory takes
    ``(settings, models_dir)`` and returns an unloaded engine; the weights attribute is a class whose
    instances are the engine's ``WeightsProvider``.
    """

    name: str
    factory: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    weights: str | None = None

    def create(self, settings: EngineConfig, models_dir: Path) -> Interpolator:
        return cast(Factory, _resolve(self.factory))(settings, models_dir)

    def weights_provider(self) -> WeightsProvider | None:
        if self.weights is None:
            return None
        return cast(WeightsProvider, _resolve(self.weights)())


def _resolve(target: str) -> Callable[..., object]:
    module_name, attribute = target.split(":")
    return cast(Callable[..., object], getattr(import_module(module_name), attribute))


_PACKAGE = "midframe.engine.interpolators"
# The registry. Its order is the order names are offered in (config errors, --engine).
ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        # per scene, the better of rife and dis (chooser; a tie goes to the first); dis alone where RIFE's
        # weights are missing
        EngineSpec("auto", f"{_PACKAGE}.auto:create",
                   Capabilities(chooses_batch=True, reuses_frames=True, prepares_per_size=True, runs=("rife", "dis"))),
        EngineSpec("rife", f"{_PACKAGE}.rife:create",
                   Capabilities(needs_weights=True, chooses_batch=True, reuses_frames=True, prepares_per_size=True),
                   weights=f"{_PACKAGE}.rife.weights:RifeWeights"),
        EngineSpec("dis", f"{_PACKAGE}.dis:create", Capabilities(reuses_frames=True)),
        EngineSpec("blend", f"{_PACKAGE}.blend:create"),
    )
}
# What engine.name accepts (the config's type is built from this when it is imported).
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)

FALLBACK_ENGINE = "dis"


def spec_of(name: str) -> EngineSpec:
    """The spec of engine ``name``; ``ConfigError`` (key ``engine.name``) for a name not registered."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(f"engine.name = {name!r}: unknown engine; choose one of {', '.join(ENGINES)}",
                          key="engine.name") from None


def weights_providers(name: str | None = None) -> dict[str, WeightsProvider]:
    """The weights engine ``name`` runs with, by the engine that owns them: its own and those of the
    engines it runs (auto: RIFE's). Empty for an engine that needs none. With no ``name``: every
    registered engine's, in the registry's order (``midframe models``)."""
    owners = list(ENGINES) if name is None else [name, *spec_of(name).capabilities.runs]
    found: dict[str, WeightsProvider] = {}
    for owner in owners:
        provider = spec_of(owner).weights_provider()
        if provider is not None:
            found[owner] = provider
    return found


def engine_chosen(settings: EngineConfig) -> bool:
    """Whether the config file names the engine (a default may fall back; a choice may not)."""
    return "name" in settings.model_fields_set


def create_interpolator(settings: EngineConfig, *, models_dir: Path, fallback: bool = False) -> Interpolator:
    """Build (not load) the engine ``settings.name``.

    With ``fallback`` (only where nobody chose the engine: the default), a neural engine whose weights
    are missing is replaced by the classical one, with a warning. An engine someone named is what
    runs, or this raises (``WeightsError`` says how to get the weights, ``DeviceError`` what the
    device lacks).
    """
    try:
        return spec_of(settings.name).create(settings, models_dir)
    except WeightsError as exc:
        if not fallback or settings.name == FALLBACK_ENGINE:
            raise
        # The engine's own error already says how to get its weights.
        # once per process: the settings check and every job build the engine, and the answer is the same
        logger.bind(once=True).warning("{}; no engine was chosen, so the {} engine is used instead (name one in "
                                       "the config or with --engine to make this an error)", exc, FALLBACK_ENGINE)
        return spec_of(FALLBACK_ENGINE).create(settings, models_dir)


def check_engine(settings: EngineConfig, *, models_dir: Path, fallback: bool = False) -> str:
    """The name of the engine that would run, built exactly as a job builds it (weights found, device
    present) but not loaded; raises what building it raises."""
    engine = create_interpolator(settings, models_dir=models_dir, fallback=fallback)
    engine.close()
    return engine.name
