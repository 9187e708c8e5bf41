"""Interpolators and shortcuts for the pipeline tests (real ffmpeg, the real blend engine)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.ffmpeg import find_ffmpeg
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.blend import blend
from midframe.engine.pipeline import convert

FF = find_ffmpeg()
LOSSLESS = OutputConfig(codec="ffv1", pix_fmt="gbrp")
FAST = OutputConfig(preset="ultrafast")


class RecordingBlend:
    """The blend engine, recording every batch it is given; ``delay_s`` slows each batch down."""

    name = "blend"
    device = "cpu"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[tuple[int, float]]] = []
        self.loaded = self.closed = False

    def load(self) -> None:
        self.loaded = True

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        self.batches.append([(pair.index, pair.t) for pair in batch])
        if self.delay_s:
            time.sleep(self.delay_s)
        return [blend(pair.a, pair.b, pair.t) for pair in batch]

    def close(self) -> None:
        self.closed = True


def create(settings: EngineConfig, models_dir: Path) -> RecordingBlend:
    """Registry factory for subprocess tests: blend slowed by $MIDFRAME_TEST_DELAY seconds a batch."""
    return RecordingBlend(float(os.environ.get("MIDFRAME_TEST_DELAY", "0")))


def run_convert(
    source: Path,
    destination: Path,
    *,
    engine: EngineConfig | None = None,
    output: OutputConfig = FAST,
    resume: ResumeConfig | None = None,
    interpolator: RecordingBlend | None = None,
    work_dir: Path | None = None,
    **kwargs,
):
    engine = engine or EngineConfig(name="blend", factor=2, batch_size=4)
    made = interpolator or RecordingBlend()
    return convert(
        source,
        destination,
        work_dir=work_dir or destination.with_name(f".{destination.name}.work"),
        engine=engine,
        output=output,
        resume=resume or ResumeConfig(segment_frames=16),
        make_interpolator=lambda settings: made,
        ffmpeg=FF,
        **kwargs,
    )


def stream(info: dict, kind: str) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == kind)
