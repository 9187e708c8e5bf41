"""How many threads each part of a job gets, so that ffmpeg and OpenCV do not take the model's cores.

Pure logic, decided once per job by the pipeline. When the model keeps every core busy (RIFE on the
CPU, dis), decoding, the scene thumbnails and encoding are a small share of the work (at 720p 2x on two
cores: x264 medium about 0.09 s of CPU per new frame, decoding 0.004 s, against ~0.8 s of model CPU)
and run one thread each: ffmpeg's own defaults (a decoder and an encoder thread per core plus x264's
lookahead and filter threads) would preempt the model's threads, and each preemption stalls the model's
other thread at its next synchronisation point. When the model leaves cores free (CUDA, blend), ffmpeg
keeps its defaults, because then the encoder may be what limits the speed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadPlan:
    decode: int | None  # ffmpeg decoder and filter threads; None: ffmpeg's choice
    encode: int | None  # encoder threads (-threads); None: the encoder's choice
    opencv: int | None  # cv2.setNumThreads for the pipeline's own OpenCV work; None: leave it


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_threads(*, cores: int, model_threads: int, model_uses_opencv: bool = False) -> ThreadPlan:
    """``model_threads``: CPU threads the interpolator keeps busy (0 for a GPU or a trivial engine)."""
    if model_threads <= 0:
        return ThreadPlan(None, None, None)
    spare = max(1, cores - model_threads)
    return ThreadPlan(decode=spare, encode=spare, opencv=None if model_uses_opencv else spare)
