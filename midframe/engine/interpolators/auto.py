"""``engine.name: auto``: each scene made by the candidate (``rife``, ``dis``) that rebuilds its own frames best.

Before the first frame is made, ``AutoInterpolator.choose`` walks the source once (frames and their scene
thumbnails, from the caller), finds the scenes with the frame loop's own cut test, rebuilds a few sampled
frames with every candidate and picks a winner per scene (``chooser``). The choices are data
(``SceneChoice``): the pipeline records them in the work folder's manifest, so a resumed job and every
farm segment use the very same ones (``use``) instead of choosing again.

Where RIFE's weights are not installed, auto has one candidate and runs ``dis`` itself, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from loguru import logger

from midframe.engine.interpolators.base import FramePair, Interpolator, Preparing
from midframe.engine.interpolators.chooser import (
    CANDIDATES,
    SampleSchedule,
    SceneChoice,
    ScenePlan,
    psnr,
    scene_choices,
)
from midframe.engine.settings import EngineConfig
from midframe.errors import WeightsError

__all__ = ["AutoInterpolator", "create"]

# (thumbnail a, thumbnail b) -> "motion" | "cut" | "static", the frame loop's decision for a pair
Classify = Callable[[np.ndarray, np.ndarray], str]


class AutoInterpolator:
    """Dispatches each pair to the engine chosen for its scene (the first candidate until ``use``)."""

    name = "auto"

    def __init__(self, engines: Mapping[str, Interpolator]) -> None:
        if not engines:
            raise ValueError("auto needs at least one candidate engine")
        self.engines = dict(engines)
        self.default = next(iter(self.engines))
        self._plan = ScenePlan([], default=self.default)
        self._on_preparing: Preparing | None = None

    # What the pipeline asks an engine about (threads, batch, backend) is the default's: it makes most frames.
    @property
    def _main(self) -> Interpolator:
        return self.engines[self.default]

    @property
    def device(self) -> str:
        return self._main.device

    @property
    def batch_size(self) -> int | None:
        return self._main.batch_size

    @property
    def threads(self) -> int:
        return self._main.threads

    @property
    def uses_opencv(self) -> bool:
        return self._main.uses_opencv

    @property
    def backend(self) -> str | None:
        return self._main.backend

    # Every candidate hears the frame loop: RIFE prepares per frame size whichever scene comes first.
    @property
    def on_preparing(self) -> Preparing | None:
        return self._on_preparing

    @on_preparing.setter
    def on_preparing(self, listener: Preparing | None) -> None:
        self._on_preparing = listener
        for engine in self.engines.values():
            engine.on_preparing = listener

    @property
    def choices(self) -> list[SceneChoice]:
        return list(self._plan.choices)

    def load(self) -> None:
        for engine in self.engines.values():
            engine.load()

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()

    def use(self, choices: Sequence[SceneChoice]) -> None:
        """Make each scene with its recorded engine (a choice naming no candidate here is an error)."""
        unknown = {choice.engine for choice in choices} - set(self.engines)
        if unknown:
            raise WeightsError(f"this job's scenes were chosen for the {', '.join(sorted(unknown))} engine, "
                               f"which cannot run here (candidates: {', '.join(self.engines)})")
        self._plan = ScenePlan(choices, default=self.default)

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        groups: dict[str, list[int]] = {}
        for k, pair in enumerate(batch):
            groups.setdefault(self._plan.engine_at(pair.index), []).append(k)
        results: list[np.ndarray | None] = [None] * len(batch)
        for name, members in groups.items():
            made = self.engines[name].interpolate([batch[k] for k in members])
            for k, frame in zip(members, made, strict=True):
                results[k] = frame
        return results  # type: ignore[return-value]

    # --- choosing -------------------------------------------------------------------------------

    def choose(self, frames: Iterable[tuple[int, np.ndarray, np.ndarray]], *, classify: Classify,
               stride: int, checkpoint: Callable[[], None] = lambda: None) -> list[SceneChoice]:
        """Walk ``frames`` (``(index, frame, thumbnail)`` in order, from 0), choose per scene, and ``use``
        the choices; returns them. ``stride``: source frames between samples (``chooser.stride_for``)."""
        schedule = SampleSchedule(stride=stride)
        batch_size = max(1, int(self.batch_size or 1))
        spans: list[tuple[int, int]] = []
        samples: list[tuple[int, dict[str, float]]] = []
        waiting: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        recent: list[tuple[int, np.ndarray, np.ndarray]] = []  # the last three frames
        kinds: list[str] = []  # kinds[i]: the decision between frames i and i + 1
        scene_start = 0
        count = 0
        for index, frame, thumb in frames:
            count = index + 1
            if recent:
                kind = classify(recent[-1][2], thumb)
                kinds.append(kind)
                if kind == "cut":
                    spans.append((scene_start, index))
                    scene_start = index
            recent = [*recent[-2:], (index, frame, thumb)]
            k = index - 1
            if len(recent) == 3 and k - 1 >= scene_start and kinds[k - 1] == kinds[k] == "motion" \
                    and schedule.due(k, scene_start=scene_start):
                schedule.take(k)
                waiting.append((k, recent[0][1], recent[2][1], recent[1][1]))
                if len(waiting) >= batch_size:
                    samples.extend(self._score(waiting))
                    waiting = []
                    checkpoint()
        if waiting:
            samples.extend(self._score(waiting))
        spans.append((scene_start, count))
        choices = scene_choices(spans, samples, default=self.default, order=tuple(self.engines))
        self.use(choices)
        return choices

    def _score(self, waiting: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> list[tuple[int, dict[str, float]]]:
        """Each sampled frame rebuilt by every candidate from its neighbours, and scored against itself."""
        # Indices of their own (negative, two per sample) keep these pairs apart from the job's own in the
        # engines' per-frame caches.
        pairs = [FramePair(index=-2 * k - 2, a=a, b=b, t=0.5) for k, a, b, _ in waiting]
        scores: list[dict[str, float]] = [{} for _ in waiting]
        for name, engine in self.engines.items():
            for slot, made, (_, _, _, truth) in zip(scores, engine.interpolate(pairs), waiting, strict=True):
                slot[name] = psnr(made, truth)
        return [(k, slot) for (k, _, _, _), slot in zip(waiting, scores, strict=True)]


def create(settings: EngineConfig, models_dir: Path) -> Interpolator:
    """The candidates that can run here; only ``dis`` (returned as itself) where RIFE's weights are missing."""
    from midframe.engine.interpolators import create_interpolator

    engines: dict[str, Interpolator] = {}
    for name in CANDIDATES:
        try:
            engines[name] = create_interpolator(settings.model_copy(update={"name": name}), models_dir=models_dir)
        except WeightsError as exc:
            # once per process: the settings check and every job build the engine, and the answer is the same
            logger.bind(once=True).warning("{}; engine auto chooses among the engines installed, so the dis engine "
                                           "is used instead (install the weights to let it choose)", exc)
    if list(engines) == ["dis"]:
        return engines["dis"]
    return AutoInterpolator(engines)
