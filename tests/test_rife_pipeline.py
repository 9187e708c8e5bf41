"""The whole product with the rife engine: `midframe interpolate` on a short real clip, drop-frame scored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.media import decode_rgb, ffmpeg_exe, psnr, read_frames

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_interpolate_with_rife_rebuilds_dropped_frames(tmp_path: Path, bigbuckbunny: Path, rife_weights: Path) -> None:  # noqa: F811
    # Nine real frames with motion, small so the CPU is quick; keep the even ones in a lossless clip.
    frames = decode_rgb(bigbuckbunny, vf=r"select=between(n\,60\,68),scale=320:180", size=(320, 180))
    assert len(frames) == 9
    evens = np.ascontiguousarray(frames[0::2])
    clip = tmp_path / "even.mkv"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "320x180", "-r", "25/2",
         "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gbrp", str(clip)],
        input=evens.tobytes(), check=True,
    )
    out, report = tmp_path / "out.mkv", tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), "--engine", "rife",
         "--factor", "2", "--codec", "ffv1", "--pix-fmt", "gbrp", "--device", "cpu", "--report", str(report), "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["engine"] == "rife" and data["device"] == "cpu"
    assert data["frames_in"] == 5 and data["frames_out"] == 10 and data["model_s"] > 0

    made = read_frames(out)
    assert len(made) == 10
    assert np.array_equal(made[0::2], evens)  # kept frames are bit-exact
    for i in (1, 3, 5, 7):
        blend = ((frames[i - 1].astype(np.float64) + frames[i + 1]) / 2).round()
        assert psnr(made[i], frames[i]) > psnr(blend, frames[i]) + 1.0, i
