"""How many threads each part of a job gets, so that ffmpeg and OpenCV do not take the model's cores.

Pure logic, decided once per job by the pipeline. When the model keeps every core busy (RIFE on the
CPU, dis), decoding, the scene thumbnails and encoding are a small share of the work (at 720p 2x on two
cores: x264 medium about 0.09 s of CPU per new frame, decoding 0.004 s, against ~0.8 s of model CPU)
and the decoder runs one thread: ffmpeg's own defaults (a decoder thread per core) would preempt the
model's threads, and each preemption stalls the model's other thread at its next synchronisation point.
The encoder gets a thread per core, below the model's CPU priority (``encode_nice``): while the model
runs it takes only what the model leaves, and when the model is done it finishes at full speed. x264
holds its last frames back for its lookahead (40 frames at preset medium): with one thread their encode
after the model's last batch was most of a short job's fixed cost (1.5 s of a 30-frame 720p job), with
two threads it takes half. When the model leaves cores free (CUDA, blend), ffmpeg keeps its defaults,
because then the encoder may be what limits the speed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadPlan:
    decode: int | None  # ffmpeg decoder and filter threads; None: ffmpeg's choice
    encode: int | None  # encoder threads (-threads); None: the encoder's choice
    opencv: int | None  # cv2.setNumThreads for the pipeline's own OpenCV work; None: leave it
    encode_nice: int = 0  # the encoder's CPU priority below the model's (a nice increment; 0: the same)


ENCODE_NICE = 5  # a busy model keeps about 85% of the CPU time the encoder would take from it


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
    if not hasattr(os, "setpriority"):  # Windows: no priority below the model's; the spare cores alone
        return ThreadPlan(decode=spare, encode=spare, opencv=None if model_uses_opencv else spare)
    return ThreadPlan(decode=spare, encode=max(spare, cores), opencv=None if model_uses_opencv else spare,
                      encode_nice=ENCODE_NICE)
