"""A clip of two real scenes for engine auto: one small and slow, where dis rebuilds frames better, then
one of fast full-resolution motion, where RIFE does (measured: 3-4 dB either way at 176x144)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tests.media import decode_rgb, ffmpeg_exe

SIZE = (176, 144)
SLOW = 26  # frames 0..25: bigbuckbunny 45..70 scaled down (little motion in pixels)
FAST = 21  # frames 26..46: bigbuckbunny 20..40 cropped at full size (fast motion)


def spliced_clip(bigbuckbunny: Path, target: Path) -> np.ndarray:
    """Write the two scenes to ``target`` (lossless ffv1, 25 fps); their RGB frames."""
    slow = decode_rgb(bigbuckbunny, vf=r"select=between(n\,45\,70),scale=176:144", size=SIZE)
    fast = decode_rgb(bigbuckbunny, vf=r"select=between(n\,20\,40),crop=176:144:552:288", size=SIZE)
    assert (len(slow), len(fast)) == (SLOW, FAST)
    frames = np.ascontiguousarray(np.concatenate([slow, fast]))
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", "25",
         "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gbrp", str(target)],
        input=frames.tobytes(), check=True,
    )
    return frames
