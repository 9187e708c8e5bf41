"""Scene cuts and still frames, decided on small grey thumbnails.

Across a cut the pipeline holds the nearest real frame instead of morphing one scene into the next;
between identical neighbours it copies instead of running the model.

- static: the largest difference of any two thumbnail pixels (0..1) is at most ``static_threshold``.
  The largest, not the mean, so that one small moving object still counts as motion; each thumbnail
  pixel averages a few hundred frame pixels, so encoder and sensor noise stay well under it.
- cut: the mean absolute difference (0..1) that is left after block motion compensation on the
  thumbnails is above ``scene_threshold``: motion within a shot is explained by small shifts, a new
  scene is not. A pair over it is searched again with shifts three times as long (``WIDE_SHIFT``):
  a whip pan that one search cannot follow leaves little (0.015 at 64 px a frame in 640x360), a new
  scene still a lot (0.14-0.17 for two parts of Big Buck Bunny), so it is a cut only where that
  leaves more than half the threshold.
- jump cut (``is_jump``): a cut between two shots of the same place (a vlog's jump cut, a return to
  an earlier framing) leaves the background in place, so little is left after motion compensation.
  What gives it away is time: the pair's score stands far above both neighbouring pairs', where
  motion, however fast, changes about as much from one frame to the next as it did before and does
  after. The caller measures the neighbours between drawings (``midframe.engine.drawings``), so
  animation on twos, which changes only every other frame, is compared with its previous drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = ["JUMP_FLOOR", "JUMP_RATIO", "THUMB_SIZE", "SceneDecision", "classify", "difference", "hold_frame",
           "is_jump", "still_score", "thumbnail"]

THUMB_SIZE = (64, 36)  # width, height
# Motion search when comparing two thumbnails: blocks of 4x4 thumbnail pixels, each moved up to 2
# pixels (1/32 of the width) to its best match.
BLOCK = 4
MAX_SHIFT = 2
WIDE_SHIFT = 6
# A jump cut scores above this and above JUMP_RATIO times both neighbouring pairs. Measured: two
# far-apart times of one shot of Big Buck Bunny 0.045-0.056, a subject (6% of the picture) moved
# across a still background 0.021; motion in that footage 0.011 at most, its largest ratio to a
# neighbour 1.8; a pan starting at 40 px a frame (640x360) 1.0.
JUMP_FLOOR = 0.012
JUMP_RATIO = 4.0


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 64x36 float32 grey image in 0..1 of an HxWx3 RGB frame (uint8 or uint16)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame.shape}")
    scale = 1.0 / 65535.0 if frame.dtype == np.uint16 else 1.0 / 255.0
    small = cv2.resize(frame, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small.astype(np.float32), cv2.COLOR_RGB2GRAY)
    return grey * np.float32(scale)


def difference(a: np.ndarray, b: np.ndarray, *, max_shift: int = MAX_SHIFT, block: int = BLOCK) -> float:
    """How much of ``b`` motion cannot explain: mean absolute difference of two thumbnails after
    moving each ``block`` x ``block`` block of ``a`` by its best shift (up to ``max_shift`` pixels)
    into ``b``.

    Within a shot every block finds its match nearby and the score stays low even under fast motion;
    across a cut none does.
    """
    if a.shape != b.shape:
        raise ValueError(f"thumbnails differ in shape: {a.shape} and {b.shape}")
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block
    a = a[:h, :w]
    m = max_shift
    padded = cv2.copyMakeBorder(np.ascontiguousarray(b[:h, :w]), m, m, m, m, cv2.BORDER_REPLICATE)
    best = None
    for dy in range(2 * m + 1):
        for dx in range(2 * m + 1):
            error = np.abs(a - padded[dy : dy + h, dx : dx + w])
            per_block = error.reshape(h // block, block, w // block, block).mean(axis=(1, 3))
            best = per_block if best is None else np.minimum(best, per_block)
    assert best is not None  # the loops run at least once (max_shift >= 0)
    return float(best.mean())


def still_score(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference of any two thumbnail pixels (0..1): the static test's measure."""
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def is_jump(score: float, *, before: float | None, after: float | None) -> bool:
    """Whether a pair whose ``difference`` is ``score`` is a jump cut, given the scores of the pairs
    before and after it (None where the video has none)."""
    around = [s for s in (before, after) if s is not None]
    return bool(around) and score > JUMP_FLOOR and score > JUMP_RATIO * max(around)


@dataclass(frozen=True)
class SceneDecision:
    kind: Literal["motion", "cut", "static"]
    score: float


def classify(
    a: np.ndarray,
    b: np.ndarray,
    *,
    scene_threshold: float,
    static_threshold: float,
    scene_detect: bool = True,
) -> SceneDecision:
    """What to do between two neighbouring frames, given their thumbnails.

    ``static``: no visible change (largest pixel difference at most ``static_threshold``), copy a
    frame; ``cut``: a new scene (score above ``scene_threshold``, only with ``scene_detect``),
    hold the nearest frame; otherwise ``motion``: interpolate.
    """
    still = still_score(a, b)
    if still <= static_threshold:
        return SceneDecision("static", still)
    if not scene_detect:
        return SceneDecision("motion", still)
    score = difference(a, b)
    if score > scene_threshold and difference(a, b, max_shift=WIDE_SHIFT) > scene_threshold / 2:
        return SceneDecision("cut", score)
    return SceneDecision("motion", score)


def hold_frame(t: float) -> Literal["a", "b"]:
    """Across a cut, the real frame nearest in time: ``a`` before the midpoint, ``b`` from it on."""
    return "a" if t < 0.5 else "b"
