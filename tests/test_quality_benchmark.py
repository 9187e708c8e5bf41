"""benchmarks/quality.py: its metrics, and one small run of the whole protocol on a generated clip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from benchmarks import quality
from tests.media import make_clip


def grey(value: float, shape=(48, 64)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def test_psnr_known_values():
    assert quality.psnr(grey(10), grey(10)) == 99.0
    assert quality.psnr(grey(10), grey(11)) == pytest.approx(20 * np.log10(255), abs=1e-9)  # MSE 1: 48.13 dB


def test_ssim_identity_symmetry_and_the_luminance_term():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    assert quality.ssim(x, x) == pytest.approx(1.0)
    noisy = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(x + rng.normal(0, 60, x.shape), 0, 255).astype(np.uint8)
    assert quality.ssim(x, noisy) == pytest.approx(quality.ssim(noisy, x))
    assert 1.0 > quality.ssim(x, noisy) > quality.ssim(x, noisier) > 0.0
    # Flat frames: only the luminance term is left, (2 mx my + C1) / (mx^2 + my^2 + C1).
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert quality.ssim(grey(100), grey(120)) == pytest.approx(expected, rel=1e-9)


def test_whole_protocol_on_a_generated_clip(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.44, fps="25", size="160x120", audio=False)
    models = tmp_path / "no-models"
    result = quality.benchmark(clip, engines=("blend", "rife"), workdir=tmp_path, models_dir=models,
                               device="cpu", log=lambda message: None)
    assert result.frames == 11 and result.size == "160x120"
    assert 4 <= result.scored <= 5  # odd frames 1..9, less any at the end that minterpolate drops
    rows = {row.method: row for row in result.rows}
    assert set(rows) == {"duplicate previous frame", "linear blend (numpy)", "ffmpeg minterpolate",
                         "engine blend", "engine rife"}
    assert rows["engine rife"].psnr is None and rows["engine rife"].note.startswith("skipped")
    assert rows["engine blend"].psnr == pytest.approx(rows["linear blend (numpy)"].psnr, abs=0.05)
    assert rows["ffmpeg minterpolate"].psnr > rows["duplicate previous frame"].psnr
    assert all(rows[m].frames == result.scored for m in rows if rows[m].psnr is not None)
    table = quality.markdown(result)
    assert table.count("\n| ") == 1 + 5 and "| engine blend |" in table  # header + rows
    # half.mkv holds the even frames at half the rate.
    assert quality.frame_rate(tmp_path / "half.mkv") == Fraction(25, 2)
    assert len(quality.decode(tmp_path / "half.mkv")) == 6


def test_the_new_modes_run_or_say_why_not(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.44, fps="25", size="160x120", audio=False)
    result = quality.benchmark(clip, engines=("blend", "auto", "rife-high", "dedup"), workdir=tmp_path,
                               models_dir=tmp_path / "no-models", device="cpu", rounds=2, log=lambda message: None)
    rows = {row.method: row for row in result.rows + result.cli_rows}
    # Without RIFE's weights auto is dis alone (said as a warning), and scored like any engine.
    assert rows["engine auto"].psnr is not None and rows["engine auto"].frames == result.scored
    assert rows["engine rife-high"].psnr is None and rows["engine rife-high"].note.startswith("skipped")
    assert "median of 2 rounds" in rows["engine blend"].note
    dedup = [row for row in result.cli_rows if "dedup" in row.method]
    assert dedup and (dedup[0].note.startswith("skipped") or dedup[0].psnr is not None)
