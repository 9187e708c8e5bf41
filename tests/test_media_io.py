"""The decode and encode pipes on real clips: exact frames, exact seeks, lossless round trips, failures."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from midframe.engine.ffmpeg import FFmpeg, find_ffmpeg, run
from midframe.engine.probe import probe
from midframe.engine.reader import FrameReader
from midframe.engine.writer import EncodeSpec, FrameWriter
from midframe.errors import MediaError, TransientError
from tests.media import make_clip, read_frames

FF = find_ffmpeg()


@pytest.fixture(scope="module")
def bframes(tmp_path_factory) -> Path:
    """libx264 with 3 B-frames and a keyframe every 12 frames: seeking lands between keyframes."""
    folder = tmp_path_factory.mktemp("io")
    return make_clip(folder / "bframes.mp4", seconds=2.0, fps="25", size="160x120", audio=False,
                     extra_output_args=["-bf", "3", "-g", "12", "-keyint_min", "12"])


def _decode(info, **kwargs) -> list[tuple[int, np.ndarray]]:
    with FrameReader(info, ffmpeg=FF, **kwargs) as reader:
        return list(reader)


def test_full_decode_matches_ffmpeg(bframes):
    info = probe(bframes, ffmpeg=FF)
    frames = _decode(info)
    expected = read_frames(bframes)
    assert [i for i, _ in frames] == list(range(50))
    assert np.array_equal(np.stack([f for _, f in frames]), expected)
    assert frames[0][1].dtype == np.uint8 and frames[0][1].shape == (120, 160, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
def test_start_at_frame_k_is_frame_exact_with_b_frames(bframes, tmp_path, suffix):
    clip = bframes
    if suffix != ".mp4":  # mpeg-ts seeks imprecisely: the reader must notice and still be exact
        clip = tmp_path / f"bframes{suffix}"
        assert run([FF.ffmpeg, "-v", "error", "-i", str(bframes), "-c", "copy", str(clip)]).returncode == 0
    info = probe(clip, ffmpeg=FF)
    assert info.has_b_frames
    full = read_frames(clip)
    for k in (1, 11, 12, 13, 29, 49):
        frames = _decode(info, start=k)
        assert [i for i, _ in frames] == list(range(k, 50)), (suffix, k)
        assert np.array_equal(np.stack([f for _, f in frames]), full[k:]), (suffix, k)


def test_seek_also_works_with_a_bundled_ffmpeg_alone(bframes):
    alone = FFmpeg(FF.ffmpeg, None)
    info = probe(bframes, ffmpeg=alone)
    full = read_frames(bframes)
    with FrameReader(info, ffmpeg=alone, start=23) as reader:
        frames = list(reader)
        assert reader.seeked
    assert np.array_equal(np.stack([f for _, f in frames]), full[23:])


def test_fewer_frames_than_probed_is_a_media_error_not_a_hang(bframes):
    info = probe(bframes, ffmpeg=FF)
    longer = dataclasses.replace(info, frame_count=info.frame_count + 5, pts=info.pts + tuple(range(10**6, 10**6 + 5)))
    with pytest.raises(MediaError, match="truncated or damaged: decoding stopped at frame 50 of 55"):
        _decode(longer)


def test_close_from_another_place_stops_reading(bframes):
    info = probe(bframes, ffmpeg=FF)
    reader = FrameReader(info, ffmpeg=FF, start=10)
    iterator = iter(reader)
    assert next(iterator)[0] == 10
    reader.close()
    assert list(iterator) == []


def test_ten_bit_source_decodes_to_sixteen_bit_rgb(tmp_path):
    clip = make_clip(tmp_path / "ten.mkv", seconds=0.2, fps="25", size="64x48", audio=False, codec="libx265",
                     pix_fmt="yuv420p10le", extra_output_args=["-x265-params", "log-level=error"])
    info = probe(clip, ffmpeg=FF)
    frames = _decode(info)
    assert frames[0][1].dtype == np.uint16
    assert np.array_equal(np.stack([f for _, f in frames]), read_frames(clip, pix_fmt="rgb48le"))


def _spec(**changes) -> EncodeSpec:
    base = EncodeSpec(width=160, height=120, fps=Fraction(50), input_pix_fmt="rgb24", codec="ffv1", pix_fmt="gbrp")
    return dataclasses.replace(base, **changes)


def test_ffv1_gbrp_round_trips_bit_exactly(bframes, tmp_path):
    frames = read_frames(bframes)[:12]
    target = tmp_path / "lossless.mkv"
    writer = FrameWriter(target, _spec(), ffmpeg=FF)
    for frame in frames:
        writer.write(frame)
    writer.finish()
    assert np.array_equal(read_frames(target), frames)
    info = probe(target, ffmpeg=FF)
    assert info.frame_count == 12 and info.duration == Fraction(12, 50)


def test_sixteen_bit_frames_round_trip_through_ffv1(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 65536, size=(48, 64, 3), dtype=np.uint16) for _ in range(3)]
    target = tmp_path / "deep.mkv"
    writer = FrameWriter(target, _spec(width=64, height=48, input_pix_fmt="rgb48le", pix_fmt="gbrp16le"), ffmpeg=FF)
    for frame in frames:
        writer.write(frame)
    writer.finish()
    assert np.array_equal(read_frames(target, pix_fmt="rgb48le"), np.stack(frames))


def test_x264_keeps_colour_tags_and_exact_mp4_timing(bframes, tmp_path):
    frames = read_frames(bframes)[:10]
    target = tmp_path / "tagged.mp4"
    spec = _spec(codec="libx264", pix_fmt="yuv420p", preset="ultrafast", fps=Fraction(48000, 1001), muxer="mp4",
                 color_space="bt709", color_primaries="bt709", color_transfer="bt709", color_range="tv")
    writer = FrameWriter(target, spec, ffmpeg=FF)
    for frame in frames:
        writer.write(frame)
    writer.finish()
    info = probe(target, ffmpeg=FF)
    assert (info.color_space, info.color_primaries, info.color_transfer, info.color_range) == ("bt709",) * 3 + ("tv",)
    assert info.r_frame_rate == Fraction(48000, 1001) and info.duration == Fraction(10 * 1001, 48000)
    assert np.abs(read_frames(target).astype(int) - frames).mean() < 3  # right matrix: only coding noise


def test_wrong_frame_size_is_refused_before_it_reaches_the_pipe(tmp_path):
    writer = FrameWriter(tmp_path / "x.mkv", _spec(), ffmpeg=FF)
    with pytest.raises(ValueError, match="does not match"):
        writer.write(np.zeros((10, 10, 3), np.uint8))
    writer.abort()


def test_encoder_crash_is_transient_with_ffmpeg_message(tmp_path):
    writer = FrameWriter(tmp_path / "x.mkv", _spec(codec="libx264", pix_fmt="yuv420p", preset="no-such-preset"),
                         ffmpeg=FF)
    with pytest.raises(TransientError) as caught:
        for _ in range(200):
            writer.write(np.zeros((120, 160, 3), np.uint8))
        writer.finish()
    assert "x.mkv" in str(caught.value) and "exit code" in str(caught.value)
    assert "preset" in str(caught.value).lower()


def test_abort_kills_the_encoder(tmp_path):
    writer = FrameWriter(tmp_path / "x.mkv", _spec(), ffmpeg=FF)
    writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.abort()
    assert writer._proc.poll() is not None
