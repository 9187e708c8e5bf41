"""The frame sizes IFNet accepts: pure arithmetic, importable without torch (the OpenVINO path needs it)."""

from __future__ import annotations

import math
from fractions import Fraction


def pad_multiple(model_scale: float) -> int:
    """What H and W must be multiples of: every block's shrunk input must divide by 4 exactly.

    64 at ``model_scale`` 1 (the coarsest block works at 1/64), 128 at 0.5, 256 at 0.25.
    """
    ratio = Fraction(model_scale).limit_denominator(64)
    need = 64 * ratio.denominator // math.gcd(ratio.numerator, 64 * ratio.denominator)
    return need * 64 // math.gcd(need, 64)
