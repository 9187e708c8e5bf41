"""Finding ffmpeg, and probing real generated clips: rates, exact counts and timestamps, streams."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import pytest

from midframe.engine.ffmpeg import FFmpeg, FFmpegProcess, find_ffmpeg, run
from midframe.engine.probe import probe
from midframe.engine.rates import is_vfr
from midframe.engine.videoinfo import bit_depth_of
from midframe.errors import ConfigError, MediaError
from tests.engine_helpers import FF, VFR_ARGS, b_frame_clip, rotated_copy
from tests.media import ffmpeg_exe, make_clip, probe_json


def _fake_binary(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\necho 'ffmpeg version 6.1.1'\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_find_ffmpeg_prefers_configured_then_env_then_path(tmp_path, monkeypatch):
    configured = _fake_binary(tmp_path / "conf", "ffmpeg")
    _fake_binary(tmp_path / "conf", "ffprobe")
    from_env = _fake_binary(tmp_path / "env", "ffmpeg")
    on_path = _fake_binary(tmp_path / "bin", "ffmpeg")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    found = find_ffmpeg(str(configured), environ={"MIDFRAME_FFMPEG": str(from_env)})
    assert found.ffmpeg == str(configured) and found.ffprobe == str(tmp_path / "conf" / "ffprobe")
    assert found.version == (6, 1)
    assert find_ffmpeg(None, environ={"MIDFRAME_FFMPEG": str(from_env)}).ffmpeg == str(from_env)
    assert find_ffmpeg(None, environ={}).ffmpeg == str(on_path)
    # A folder works too.
    assert find_ffmpeg(str(tmp_path / "env"), environ={}).ffmpeg == str(from_env)
    with pytest.raises(ConfigError, match="no such executable"):
        find_ffmpeg(str(tmp_path / "missing"), environ={})


def test_find_ffmpeg_falls_back_to_the_bundled_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_ffmpeg(None, environ={})
    assert "imageio_ffmpeg" in found.ffmpeg and found.ffprobe is None
    assert found.version >= (4, 0)


def test_process_drains_a_flood_of_stderr_without_hanging():
    # ~2 MB of log lines: far more than a pipe holds, so an undrained stderr would block ffmpeg.
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "debug", "-f", "lavfi", "-i",
           "testsrc2=size=64x64:rate=25:duration=4", "-f", "null", "-"]
    proc = FFmpegProcess(cmd)
    assert proc.wait(timeout=60) == 0
    assert proc.stderr_tail(1)
    assert run([ffmpeg_exe(), "-v", "error", "-i", "/nonexistent.mp4"]).returncode != 0


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("probe")
    plain = b_frame_clip(folder / "plain.mp4")
    return {
        "cfr": rotated_copy(plain, folder / "cfr.mp4", 90),
        "ntsc": make_clip(folder / "ntsc.mkv", seconds=1.0, fps="24000/1001", size="160x120"),
        "vfr": make_clip(folder / "vfr.mkv", seconds=1.0, fps="25", size="160x120", audio=False,
                         extra_output_args=VFR_ARGS),
        "ten": make_clip(folder / "ten.mkv", seconds=0.4, fps="25", size="160x120", audio=False,
                         codec="libx265", pix_fmt="yuv420p10le", extra_output_args=["-x265-params", "log-level=error"]),
    }


def test_probe_cfr_clip_with_b_frames_audio_subtitles_rotation(clips):
    info = probe(clips["cfr"], ffmpeg=FF)
    assert (info.width, info.height) == (160, 120) and info.display_size == (120, 160)
    assert info.frame_count == 30 and info.r_frame_rate == 25 and info.avg_frame_rate == 25 and not info.vfr
    assert info.duration == Fraction(30, 25)
    assert info.timestamps[0] == 0 and info.timestamps[1] == Fraction(1, 25) and len(info.timestamps) == 30
    assert info.has_b_frames
    assert info.rotation == 90
    assert info.color_space == "bt709" and info.color_primaries == "bt709" and info.color_transfer == "bt709"
    assert info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert [s.codec for s in info.audio] == ["aac"]
    assert [s.codec for s in info.subtitles] == ["mov_text"]
    assert "mp4" in info.format_name
    assert info.frame_count == int(probe_json(clips["cfr"])["streams"][0]["nb_read_frames"])


def test_probe_ntsc_rate_is_exact(clips):
    info = probe(clips["ntsc"], ffmpeg=FF)
    assert info.r_frame_rate == Fraction(24000, 1001) and info.fps == Fraction(24000, 1001)
    assert info.frame_count == 24 and not info.vfr
    assert info.time_base == Fraction(1, 1000)  # matroska rounds to milliseconds, still not VFR


def test_probe_vfr_clip(clips):
    info = probe(clips["vfr"], ffmpeg=FF)
    assert info.vfr
    assert info.frame_count == 25
    deltas = [b - a for a, b in zip(info.timestamps, info.timestamps[1:])]
    assert min(deltas) < Fraction(30, 1000) and max(deltas) > Fraction(50, 1000)
    assert info.fps == info.avg_frame_rate == Fraction(25) / info.duration


def test_probe_ten_bit(clips):
    info = probe(clips["ten"], ffmpeg=FF)
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10 and info.high_bit_depth


def test_probe_without_ffprobe_agrees(clips):
    alone = FFmpeg(FF.ffmpeg, None)
    for name in ("cfr", "ntsc", "vfr"):
        with_probe, without = probe(clips[name], ffmpeg=FF), probe(clips[name], ffmpeg=alone)
        for key in ("width", "height", "frame_count", "pts", "duration", "vfr", "r_frame_rate", "rotation",
                    "pix_fmt", "first_pts", "video_index"):
            assert getattr(with_probe, key) == getattr(without, key), (name, key)
        assert [s.codec for s in with_probe.audio] == [s.codec for s in without.audio]


def test_helpers():
    assert bit_depth_of("yuv420p") == 8 and bit_depth_of("yuv422p10le") == 10 and bit_depth_of("p010le") == 10
    assert bit_depth_of("rgb48le") == 16 and bit_depth_of("gbrp12le") == 12 and bit_depth_of("nv12") == 8
    assert not is_vfr([0, 41, 83, 125, 167, 208], Fraction(1, 1000))  # 24000/1001 in milliseconds
    assert is_vfr([0, 40, 80, 100, 120], Fraction(1, 1000))


def test_bad_inputs_have_human_reasons(tmp_path, clips):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50, encoding="utf-8")
    audio = make_clip(tmp_path / "audio.mkv", seconds=0.3, fps="25", size="64x64")
    audio_only = tmp_path / "audio_only.m4a"
    run([ffmpeg_exe(), "-v", "error", "-i", str(audio), "-vn", "-c", "copy", str(audio_only)])
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clips["cfr"].read_bytes()[: clips["cfr"].stat().st_size // 2])
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "is a folder",
        empty: "is empty",
        text: "is not a video file",
        audio_only: "has no video stream",
        truncated: "truncated",
    }
    for path, reason in cases.items():
        with pytest.raises(MediaError) as caught:
            probe(path, ffmpeg=FF)
        assert reason in caught.value.reason and str(caught.value).startswith(str(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; the CLI test covers this with capabilities dropped")
def test_unreadable_file(tmp_path, clips):
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(clips["cfr"].read_bytes())
    locked.chmod(0)
    with pytest.raises(MediaError, match="permission denied"):
        probe(locked, ffmpeg=FF)
