"""Animation made from real footage: each drawing held for two or three frames, with the truth kept.

Used by the dedup tests and by ``benchmarks/quality.py``. A pattern is a list of hold lengths: ``[2,
2, 2]`` is "on twos", ``[3]`` "on threes", ``[1]`` "on ones"; it repeats to the clip's end. Frame ``k``
of the clip shows the real frame where its drawing started; ``truth[k]`` is the real frame ``k``, what
an even animation would show there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.media import ffmpeg_exe


@dataclass(frozen=True)
class Held:
    frames: np.ndarray  # N x H x W x 3 uint8: what the clip shows
    truth: np.ndarray  # N x H x W x 3 uint8: the real pictures at the same times
    drawing: tuple[int, ...]  # per frame, the frame its drawing started at (== k where k is a drawing)

    def repeated(self) -> list[int]:
        """The frames that repeat their predecessor."""
        return [k for k, d in enumerate(self.drawing) if d != k]


def hold_pattern(count: int, pattern: Sequence[int]) -> tuple[int, ...]:
    """The drawing each of ``count`` frames shows, holding drawings for ``pattern``'s lengths in turn."""
    if not pattern or min(pattern) < 1:
        raise ValueError(f"pattern {pattern}: hold lengths are 1 or more")
    drawing: list[int] = []
    step = 0
    while len(drawing) < count:
        start = len(drawing)
        drawing += [start] * pattern[step % len(pattern)]
        step += 1
    return tuple(drawing[:count])


def held(truth: np.ndarray, pattern: Sequence[int]) -> Held:
    """``truth``'s frames held for ``pattern``'s lengths: frame ``2k+1 := 2k`` for ``[2]``."""
    drawing = hold_pattern(len(truth), pattern)
    return Held(frames=truth[list(drawing)], truth=truth, drawing=drawing)


def decode(source: Path, *, width: int, height: int, first: int = 0, count: int | None = None) -> np.ndarray:
    """``source``'s frames as RGB at ``width`` x ``height`` (area scaling), from ``first``."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(source), "-vf", f"scale={width}:{height}:flags=area",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)[first:]
    return np.ascontiguousarray(frames if count is None else frames[:count])


def write(frames: np.ndarray, path: Path, *, fps: str = "25",
          codec: Sequence[str] = ("-c:v", "ffv1", "-pix_fmt", "gbrp"), audio: bool = True) -> Path:
    """``frames`` as a video (lossless by default), with a 440 Hz tone as long as the video."""
    height, width = frames.shape[1:3]
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
           "-r", fps, "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-shortest", "-c:a", "aac"]
    subprocess.run([*cmd, *codec, str(path)], input=frames.tobytes(), check=True)
    return path
