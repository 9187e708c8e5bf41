"""convert() end to end on generated clips: counts, durations, audio sync, streams, exact frames, control."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.conversion import JobControl
from midframe.engine.ffmpeg import run
from midframe.engine.manifest import load_manifest
from midframe.engine.plan import build_timeline
from midframe.engine.probe import probe
from midframe.engine.reader import FrameReader
from midframe.errors import Aborted, OutputError
from tests.engine_helpers import (
    FF,
    LOSSLESS,
    VFR_ARGS,
    RecordingBlend,
    assert_audio_in_sync,
    b_frame_clip,
    rotated_copy,
    run_convert,
    stream,
)
from tests.media import make_clip, probe_json, read_frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pipeline")
    plain = b_frame_clip(folder / "plain.mp4")
    return {
        "mp4": rotated_copy(plain, folder / "rotated.mp4", 90),
        "mkv": make_clip(folder / "plain.mkv", seconds=1.0, fps="25", size="160x120", subtitles=True),
        "ntsc": make_clip(folder / "ntsc.mkv", seconds=1.5, fps="24000/1001", size="128x96"),
        "vfr": make_clip(folder / "vfr.mkv", seconds=1.2, fps="25", size="128x96", extra_output_args=VFR_ARGS),
        "ten": make_clip(folder / "ten.mkv", seconds=0.4, fps="25", size="128x96", codec="libx265",
                         pix_fmt="yuv420p10le", extra_output_args=["-x265-params", "log-level=error"]),
    }


def upright_frames(path: Path) -> np.ndarray:
    """Every frame as displayed (rotation applied): tests.media.read_frames does not rotate."""
    with FrameReader(probe(path, ffmpeg=FF), ffmpeg=FF, keep_rotation=False) as reader:
        return np.stack([frame for _, frame in reader])


def test_factor_two_mp4_keeps_audio_subtitles_rotation_colour(clips, tmp_path):
    target = tmp_path / "out.mp4"
    engine = RecordingBlend()
    report = run_convert(clips["mp4"], target, interpolator=engine)
    info = probe(target, ffmpeg=FF)
    source = probe(clips["mp4"], ffmpeg=FF)
    assert info.frame_count == 2 * source.frame_count == report.frames_out == 60
    assert info.r_frame_rate == 50 and info.duration == source.duration
    assert info.rotation == 90 and (info.width, info.height) == (160, 120)
    assert info.color_space == "bt709" and info.color_primaries == "bt709"
    assert [s.codec for s in info.subtitles] == ["mov_text"]
    assert_audio_in_sync(clips["mp4"], target)
    assert report.frames_in == 30 and report.fps_out == "50" and report.engine == "blend"
    assert report.frames_interpolated == 29 and report.model_s >= 0 and report.wall_s > 0
    assert engine.loaded and engine.closed
    assert all(len(batch) <= 4 for batch in engine.batches)
    assert all(t == 0.5 for batch in engine.batches for _, t in batch)
    assert not target.with_name(f".{target.name}.work").exists()


def test_lossless_output_keeps_source_frames_bit_exact(clips, tmp_path):
    # The rotated mp4 source: a matroska file keeps the rotation where this ffmpeg can write it there,
    # else the frames are turned upright; either way they show the same as the source's.
    target = tmp_path / "out.mkv"
    report = run_convert(clips["mp4"], target, engine=EngineConfig(name="blend", factor=3), output=LOSSLESS)
    info = probe(target, ffmpeg=FF)
    assert (info.rotation, info.width, info.height) in ((90, 160, 120), (0, 120, 160))
    source, output = upright_frames(clips["mp4"]), upright_frames(target)
    assert output.shape[1:] == (160, 120, 3) and len(output) == 3 * len(source) == report.frames_out
    assert np.array_equal(output[::3], source)
    # The last source frame is held: the output lasts exactly as long.
    assert np.array_equal(output[-1], source[-1]) and np.array_equal(output[-2], source[-1])
    assert [s.codec for s in info.subtitles] == ["subrip"]  # mov_text cannot go into matroska
    assert_audio_in_sync(clips["mp4"], target)


def test_ten_bit_source_stays_ten_bit(clips, tmp_path):
    target = tmp_path / "out.mkv"
    report = run_convert(clips["ten"], target)
    info = probe(target, ffmpeg=FF)
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10 and report.extra["pix_fmt"] == "yuv420p10le"
    assert info.frame_count == 20


@pytest.mark.parametrize("name", ["ntsc", "vfr"])
def test_fps_60_sits_every_frame_at_its_source_time(clips, tmp_path, name):
    target = tmp_path / "out.mkv"
    engine = EngineConfig(name="blend", target_fps=Fraction(60))
    report = run_convert(clips[name], target, engine=engine, output=LOSSLESS)
    source = probe(clips[name], ffmpeg=FF)
    out_json = probe_json(target)
    frames = int(stream(out_json, "video")["nb_read_frames"])
    assert frames == report.frames_out == round(source.duration * 60)
    assert report.fps_out == "60"
    # A/V drift under one output frame over the whole file.
    video_end = Fraction(frames, 60)
    assert abs(video_end - source.duration) <= Fraction(1, 120)
    assert_audio_in_sync(clips[name], target)
    # Frames the timeline puts exactly on a source frame are that frame, bit-exact.
    timeline = build_timeline(source, engine)
    src, out = read_frames(clips[name]), read_frames(target)
    exact = [f for f in timeline.frames() if f.t == 0.0]
    assert exact
    for f in exact:
        assert np.array_equal(out[f.index], src[f.source])


def test_vfr_with_factor_gives_exactly_n_times_the_frames(clips, tmp_path):
    target = tmp_path / "out.mkv"
    report = run_convert(clips["vfr"], target)
    source = probe(clips["vfr"], ffmpeg=FF)
    assert report.frames_out == 2 * source.frame_count
    assert Fraction(report.fps_out) == 2 * source.avg_frame_rate
    assert_audio_in_sync(clips["vfr"], target)


def test_webm_gets_its_audio_re_encoded_to_opus(clips, tmp_path):
    target = tmp_path / "out.webm"
    run_convert(clips["mkv"], target, output=OutputConfig(codec="libvpx-vp9", crf=40, preset="medium"))
    info = probe(target, ffmpeg=FF)
    assert info.codec == "vp9" and [s.codec for s in info.audio] == ["opus"]
    assert [s.codec for s in info.subtitles] == ["webvtt"]


def test_progress_callback(clips, tmp_path):
    seen = []
    run_convert(clips["mkv"], tmp_path / "out.mkv", on_progress=seen.append,
                interpolator=RecordingBlend(delay_s=0.02))
    assert seen[0].frames_done == 0 and seen[-1].frames_done == seen[-1].frames_total == 50
    assert all(a.frames_done <= b.frames_done for a, b in zip(seen, seen[1:]))
    assert seen[-1].eta_s == 0.0 and seen[-1].fps > 0 and seen[-1].elapsed_s > 0
    middle = [p for p in seen[1:-1]]
    assert all(p.eta_s is not None and p.eta_s >= 0 for p in middle)
    assert len(seen) <= 2 + seen[-1].elapsed_s / 0.25 + 1  # at most a few a second


def test_pause_holds_the_loop_and_abort_keeps_the_work(clips, tmp_path):
    control = JobControl()
    target = tmp_path / "out.mkv"
    work = tmp_path / "work"
    paused_at: list[float] = []

    reported_after_pause: list[float] = []

    def on_progress(progress):
        if paused_at:
            reported_after_pause.append(time.monotonic())
        # The abort comes from a report after the one that paused: an abort beside the pause lifts it.
        if paused_at and progress.frames_done >= 24:
            control.abort("test stop")
        if progress.frames_done >= 8 and not paused_at:
            paused_at.append(time.monotonic())
            control.pause()
            threading.Timer(0.6, control.resume).start()

    started = time.monotonic()
    with pytest.raises(Aborted, match="test stop"):
        # 0.2 s a batch (8 of the 50 output frames): reports (every 0.25 s) come while the job runs.
        run_convert(clips["mkv"], target, work_dir=work, control=control, on_progress=on_progress,
                    interpolator=RecordingBlend(delay_s=0.2))
    assert time.monotonic() - started >= 0.6
    assert reported_after_pause[0] - paused_at[0] >= 0.6  # no frame made while paused
    assert not target.exists()
    manifest = load_manifest(work)
    assert manifest is not None and manifest.frames_done >= 24
    # The open segment was closed cleanly, not thrown away.
    assert manifest.segments[-1].end == manifest.frames_done


def test_cut_holds_nearest_frame_and_still_frames_skip_the_model(tmp_path):
    first = make_clip(tmp_path / "a.mkv", seconds=0.4, fps="25", size="128x96", audio=False, source="testsrc2")
    second = make_clip(tmp_path / "b.mkv", seconds=0.4, fps="25", size="128x96", audio=False,
                       source="smptebars")
    joined = tmp_path / "cut.mkv"
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{first}'\nfile '{second}'\n", encoding="utf-8")
    assert run([FF.ffmpeg, "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                str(joined)]).returncode == 0
    engine = RecordingBlend()
    target = tmp_path / "out.mkv"
    report = run_convert(joined, target, output=LOSSLESS, interpolator=engine)
    assert report.frames_cut == 1
    assert report.frames_static == 9  # the bars do not move
    assert report.frames_interpolated == 9
    src, out = read_frames(joined), read_frames(target)
    # The frame between the last moving frame and the first still bar is a copy (t = 0.5 -> the later).
    assert np.array_equal(out[19], src[10])
    assert all(index < 9 for batch in engine.batches for index, _ in batch)


def test_existing_destination_is_refused(clips, tmp_path):
    target = tmp_path / "out.mkv"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        run_convert(clips["mkv"], target)
    assert target.read_bytes() == b"keep me"


def test_unknown_codec_fails_early_with_the_option_named(clips, tmp_path):
    from midframe.errors import ConfigError

    with pytest.raises(ConfigError, match="no-such-codec"):
        run_convert(clips["mkv"], tmp_path / "out.mkv", output=OutputConfig(codec="no-such-codec"))
    # A pair that cannot work is refused before any frame, naming the settings (not a work file).
    with pytest.raises(ConfigError, match=r"output\.codec \(--codec\) ffv1 .* \.mp4 file cannot hold") as refused:
        run_convert(clips["mkv"], tmp_path / "out.mp4", output=LOSSLESS.model_copy(update={"container": "mp4"}))
    assert "output.container" in str(refused.value) and not list(tmp_path.glob("out.*"))


def test_single_frame_video(tmp_path):
    clip = make_clip(tmp_path / "one.mkv", seconds=0.04, fps="25", size="64x48", audio=False)
    report = run_convert(clip, tmp_path / "out.mkv", engine=EngineConfig(name="blend", factor=4),
                         resume=ResumeConfig())
    assert report.frames_in == 1 and report.frames_out == 4
    assert len(read_frames(tmp_path / "out.mkv")) == 4


def test_a_23_976_mkv_at_2x_is_exactly_48000_1001(clips, tmp_path):
    """Every packet sits at frame i * 1001/48000 s (to the Matroska millisecond) and midframe's probe
    reads 48000/1001 (also for its own output taken as a source). ffprobe's r_frame_rate for it reads
    7001/146 with ffmpeg 5.1: its Matroska demuxer turns the header's DefaultDuration into a fraction
    with terms up to 30000, so a plain ffmpeg mkv at 48000/1001 reads the same; the test compares with
    one rather than naming the figure."""
    target = tmp_path / "out.mkv"
    report = run_convert(clips["ntsc"], target)
    assert Fraction(report.fps_out) == Fraction(48000, 1001)
    assert probe(target, ffmpeg=FF).fps == Fraction(48000, 1001)
    packets = run([FF.ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts",
                   "-of", "csv=p=0", str(target)], timeout=60).stdout.decode().split()
    stamps = sorted(int(value) for value in packets)
    assert len(stamps) == report.frames_out
    # Both the first stamp and each later one are rounded to the millisecond: within 1 ms of each other.
    assert all(abs(Fraction(stamp - stamps[0]) - Fraction(i * 1001 * 1000, 48000)) <= 1
               for i, stamp in enumerate(stamps))
    plain = tmp_path / "plain.mkv"
    make_clip(plain, seconds=0.5, fps="48000/1001", size="64x48", audio=False)
    rates = [probe_json(path)["streams"][0]["r_frame_rate"] for path in (target, plain)]
    assert rates[0] == rates[1], rates
