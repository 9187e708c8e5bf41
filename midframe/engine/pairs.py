"""What each output frame is made of: a source frame copied, held, or two frames and a time between.

No I/O: the frame loop hands in the thumbnails (``thumb(i)``, read ahead as far as ``context``
says), so a test can drive it with any sequence. Decisions, in order:

- With ``engine.dedup: auto``, a drawing held for a few frames (``midframe.engine.drawings``) is one
  drawing shown from its first frame: every output frame from it up to the next drawing is made
  between the two at its true time, so the motion is evenly spaced. The drawing's own frame is
  copied bit-exact; a cut between the two drawings leaves the hold as it was.
- A frame exactly on a source frame is that frame.
- Otherwise the pair is classified (``midframe.engine.scenes``): identical neighbours are copied, a
  cut (or a jump cut, whose neighbours are measured between drawings) holds the nearest frame, and
  anything else is interpolated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from midframe.engine import drawings, scenes
from midframe.engine.settings import EngineConfig
from midframe.engine.timeline import Timeline

__all__ = ["Step", "PairPlanner", "context"]


@dataclass(frozen=True)
class Step:
    """``copy``/``static``/``cut``: send source frame ``a``; ``motion``: interpolate ``a``..``b`` at ``t``.
    ``repeat``: this output frame's source frame is a repeat that dedup moves past."""

    kind: Literal["copy", "motion", "static", "cut"]
    a: int
    b: int = -1
    t: float = 0.0
    repeat: bool = False


def context(engine: EngineConfig) -> int:
    """Source frames either side of an output frame's that its decision may read."""
    if engine.dedup == "off" and not engine.scene_detect:
        return 1
    return drawings.context(engine.dedup_max_run)


class PairPlanner:
    """Steps for a timeline's output frames; caches what it measured, forgets what is behind."""

    def __init__(self, *, timeline: Timeline, engine: EngineConfig, thumb: Callable[[int], np.ndarray]) -> None:
        self.timeline = timeline
        self.engine = engine
        self.thumb = thumb
        self.last = timeline.frames_in - 1
        self.dedup = engine.dedup == "auto"
        self._changes: dict[int, float] = {}
        self._decisions: dict[tuple[int, int], scenes.SceneDecision] = {}
        self._scores: dict[tuple[int, int], float] = {}
        self._holds: dict[int, tuple[int, int] | None] = {}
        self.drawings = drawings.Drawings.of(self._change, last=self.last, static_threshold=engine.static_threshold,
                                             max_run=engine.dedup_max_run)

    def _change(self, j: int) -> float:
        if j not in self._changes:
            self._changes[j] = scenes.still_score(self.thumb(j - 1), self.thumb(j))
        return self._changes[j]

    def _score(self, a: int, b: int) -> float:
        if (a, b) not in self._scores:
            self._scores[(a, b)] = scenes.difference(self.thumb(a), self.thumb(b))
        return self._scores[(a, b)]

    def decide(self, a: int, b: int) -> scenes.SceneDecision:
        """static, cut or motion between drawings (or frames) ``a`` and ``b``."""
        key = (a, b)
        if key not in self._decisions:
            engine = self.engine
            decision = scenes.classify(self.thumb(a), self.thumb(b), scene_threshold=engine.scene_threshold,
                                       static_threshold=engine.static_threshold, scene_detect=engine.scene_detect)
            if decision.kind == "motion" and engine.scene_detect:
                score = self._score(a, b)
                before = self._score(*self._span(a - 1)) if a >= 1 else None
                after = self._score(*self._span(b)) if b < self.last else None
                if scenes.is_jump(score, before=before, after=after):
                    decision = scenes.SceneDecision("cut", score)
            self._decisions[key] = decision
        return self._decisions[key]

    def _hold(self, source: int) -> tuple[int, int] | None:
        if source not in self._holds:
            self._holds[source] = self.drawings.hold(source)
        return self._holds[source]

    def _span(self, source: int) -> tuple[int, int]:
        return self._hold(source) or (source, source + 1)

    def step(self, source: int, t: float) -> Step:
        if self.dedup:
            hold = self._hold(source)
            if hold is not None and not (source == hold[0] and t == 0.0):
                first, last = hold
                if self.decide(first, last).kind == "motion":
                    where = self.timeline.between(source=source, t=t, first=first, last=last)
                    return Step("motion", first, last, where, repeat=source != first)
        if t == 0.0:
            return Step("copy", source)
        decision = self.decide(source, source + 1)
        if decision.kind == "motion":
            return Step("motion", source, source + 1, t)
        return Step(decision.kind, source if scenes.hold_frame(t) == "a" else source + 1)

    def forget(self, before: int) -> None:
        """Drop what was measured about frames before ``before`` (never asked about again)."""
        self._changes = {j: v for j, v in self._changes.items() if j >= before}
        self._holds = {j: v for j, v in self._holds.items() if j >= before}
        self._decisions = {k: v for k, v in self._decisions.items() if k[0] >= before}
        self._scores = {k: v for k, v in self._scores.items() if k[0] >= before}
