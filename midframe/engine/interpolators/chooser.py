"""The per-scene choice of ``engine.name: auto``, as pure decisions: which frames to sample, which engine wins.

No engine wins everywhere: on small or low-motion footage the classical ``dis`` engine rebuilds frames
better than RIFE, on fast real footage RIFE leads by 2-3 dB. The evidence is in the video itself:
source frame ``k`` rebuilt from frames ``k - 1`` and ``k + 1`` at ``t = 0.5`` by each candidate and
scored against the real frame ``k`` (PSNR). The winner is picked once per scene (between cuts) by the
mean of its samples: a pick per window captured 85-92% of a per-frame oracle's gain where the candidates
differ, a pick per 10 frames was less robust.

``SampleSchedule`` keeps the cost in hand: a sample every ``stride`` source frames, plus one early in
each scene so that a short scene is judged on its own frames, but never more than ``slack`` samples
ahead of the steady rate (a clip of many tiny scenes does not sample every scene). A scene with no
sample keeps the default engine.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from midframe.engine.interpolators import ENGINES

__all__ = ["SceneChoice", "ScenePlan", "SampleSchedule", "pick", "psnr", "scene_choices", "stride_for"]

# auto's engines, from the registry, in order of preference: a tie, or no evidence, keeps the first
CANDIDATES = ENGINES["auto"].capabilities.runs
# Share of the model's frames spent on samples (each costs one frame of every candidate). At 720p on a
# CPU, dis costs about a tenth of RIFE, so 7% of the frames sampled is about 8% more model time.
SAMPLE_SHARE = 0.07
SLACK = 3
# dB by which another candidate's mean must beat the first's to be chosen: a few samples estimate a scene's
# mean with some noise, and RIFE's lead where it leads (fast motion: 2-3 dB) is larger than dis's (0.7-0.9).
MARGIN_DB = 0.2


@dataclass(frozen=True)
class SceneChoice:
    """Source frames ``start .. end - 1`` (one scene) made by ``engine``; ``scores`` the candidates'
    mean PSNR (dB) on the scene's ``samples`` rebuilt frames (empty when none was sampled)."""

    start: int
    end: int
    engine: str
    scores: Mapping[str, float] = field(default_factory=dict)
    samples: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "engine": self.engine,
                "scores": {name: round(value, 2) for name, value in self.scores.items()}, "samples": self.samples}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SceneChoice:
        return cls(start=int(data["start"]), end=int(data["end"]), engine=str(data["engine"]),
                   scores={str(k): float(v) for k, v in dict(data.get("scores") or {}).items()},
                   samples=int(data.get("samples", 0)))


class ScenePlan:
    """Which engine makes the pairs that start at each source frame; ``default`` outside every scene."""

    def __init__(self, choices: Sequence[SceneChoice], *, default: str) -> None:
        self.choices = sorted(choices, key=lambda choice: choice.start)
        self.default = default
        self._starts = [choice.start for choice in self.choices]

    def engine_at(self, index: int) -> str:
        found = bisect.bisect_right(self._starts, index) - 1
        if found >= 0 and index < self.choices[found].end:
            return self.choices[found].engine
        return self.default


def psnr(made: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of two frames of one shape and dtype (uint8 or uint16 peak); 99 when identical."""
    peak = 65535.0 if truth.dtype == np.uint16 else 255.0
    mse = float(np.mean((made.astype(np.float32) - truth.astype(np.float32)) ** 2))
    return 99.0 if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def pick(scores: Mapping[str, Sequence[float]], *, order: Sequence[str] = CANDIDATES,
         margin: float = MARGIN_DB) -> str | None:
    """The candidate with the highest mean score, where it beats the first candidate in ``order`` by more
    than ``margin`` dB (else the first keeps it); None without any score."""
    means = {name: float(np.mean(values)) for name, values in scores.items() if len(values)}
    if not means:
        return None
    ranked = sorted(means, key=lambda name: (-means[name], order.index(name) if name in order else len(order)))
    first = next((name for name in order if name in means), ranked[0])
    return ranked[0] if means[ranked[0]] > means[first] + margin else first


def stride_for(*, frames_in: int, model_frames: int, share: float = SAMPLE_SHARE) -> int:
    """Source frames between samples so that about ``share`` of the ``model_frames`` are sampled."""
    budget = share * max(model_frames, 0)
    if budget <= 0 or frames_in <= 0:
        return max(frames_in, 1)
    return max(2, math.ceil(frames_in / budget))


class SampleSchedule:
    """Decides, frame by frame in order, whether source frame ``k`` is rebuilt as a sample."""

    def __init__(self, *, stride: int, slack: int = SLACK) -> None:
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.stride = stride
        self.slack = slack
        self.taken = 0
        self._last: int | None = None

    def due(self, k: int, *, scene_start: int) -> bool:
        """Whether to sample ``k`` (a frame whose two neighbours are in its scene and differ from it)."""
        if self._last is None or self._last < scene_start:
            return self.taken < k / self.stride + self.slack
        return k - self._last >= self.stride

    def take(self, k: int) -> None:
        self._last = k
        self.taken += 1


def scene_choices(spans: Sequence[tuple[int, int]], samples: Iterable[tuple[int, Mapping[str, float]]], *,
                  default: str, order: Sequence[str] = CANDIDATES, margin: float = MARGIN_DB) -> list[SceneChoice]:
    """One choice per scene ``(start, end)`` from the samples ``(k, {engine: psnr})`` that fall in it."""
    starts = [start for start, _ in spans]
    collected: list[dict[str, list[float]]] = [{} for _ in spans]
    counts = [0] * len(spans)
    for k, scores in samples:
        found = bisect.bisect_right(starts, k) - 1
        if found < 0 or k >= spans[found][1]:
            continue
        counts[found] += 1
        for name, value in scores.items():
            collected[found].setdefault(name, []).append(value)
    choices = []
    for (start, end), by_engine, count in zip(spans, collected, counts, strict=True):
        winner = pick(by_engine, order=order, margin=margin) or default
        means = {name: float(np.mean(values)) for name, values in by_engine.items()}
        choices.append(SceneChoice(start=start, end=end, engine=winner, scores=means, samples=count))
    return choices
