"""Fidelity with default settings, on real ffmpeg and real footage: colour of the kept frames, codec and
container following the source, HDR10 metadata, nominal rates, and the check before publishing.

Clips are slices of the real footage (bigbuckbunny) at 320x180, built once per module by
``benchmarks/fidelity.py`` (the same clips its table is measured on); the engine is ``blend``, as
kept frames do not depend on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from benchmarks import fidelity
from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.ffmpeg import FFmpeg, run
from midframe.engine.manifest import Manifest, Segment, load_manifest, verified_segments
from midframe.engine.plan import build_timeline
from midframe.engine.probe import probe
from midframe.engine.verify import verify_output
from midframe.errors import ConfigError, VerificationError
from tests.engine_helpers import FF, assert_audio_in_sync, run_convert, stream
from tests.media import make_clip, probe_json

ROOT = Path(__file__).resolve().parents[1]
BLEND = EngineConfig(name="blend", factor=2, batch_size=8)
QUICK = OutputConfig(preset="veryfast")  # codec: auto; for the tests that are not about quality


@pytest.fixture(scope="module")
def clips(tmp_path_factory, bigbuckbunny) -> Path:
    return tmp_path_factory.mktemp("fidelity")


def _source(case: str, folder: Path) -> Path:
    return fidelity.make_case(case, folder)


def _within_bounds(measured: fidelity.Measured) -> None:
    assert measured.psnr_gap <= 0.3, (measured.midframe, measured.reencode)
    assert measured.shift_excess <= 0.15, (measured.midframe, measured.reencode)


# --- colour -----------------------------------------------------------------------------------------


def _convert_default(tmp: Path):
    def convert(source: Path, output: Path) -> Path:
        return run_convert(source, output, engine=BLEND, output=OutputConfig(), resume=ResumeConfig(),
                           work_dir=tmp / f".{output.name}.work").output
    return convert


def test_kept_frames_of_real_footage_are_as_close_as_a_plain_re_encode(bigbuckbunny, tmp_path):
    # One second of the 1280x720 H.264 original (untagged: converted as bt709, what players assume).
    source = tmp_path / "bbb-1s.mp4"
    done = run([FF.ffmpeg, "-v", "error", "-i", str(bigbuckbunny), "-t", "1", "-map", "0", "-c", "copy", str(source)])
    assert done.returncode == 0, done.stderr
    measured = fidelity.measure("bbb", source, tmp_path, run_midframe=_convert_default(tmp_path))
    assert measured.details["output"]["codec"] == "h264" and measured.details["output"]["frames"] == 50
    _within_bounds(measured)
    # The old default conversion made every channel ~1.3/255 darker; now the shift is the codec's own.
    assert max(abs(v) for v in measured.midframe.shift) < 0.3


@pytest.mark.parametrize("case", ["bt601", "bt709", "full"])
def test_kept_frames_of_tagged_clips_are_as_close_as_a_plain_re_encode(clips, tmp_path, case):
    source = fidelity.make_case(case, clips, seconds=1.0, size="320:180")
    measured = fidelity.measure(case, source, tmp_path, run_midframe=_convert_default(tmp_path))
    _within_bounds(measured)
    out = probe_json(tmp_path / f"{case}.out{source.suffix}")
    video, original = stream(out, "video"), stream(probe_json(source), "video")
    for key in ("color_space", "color_range", "color_primaries"):
        assert video.get(key) == original.get(key), key


# --- codec and container follow the source -------------------------------------------------------------------

FORMATS = {
    # case: (codec, pix_fmt, rate, frames, tag, audio sync within)
    # Opus into Matroska: ffmpeg 5.1's muxer moves it by its pre-skip (6.5 ms) on every remux.
    "webm": ("vp9", "yuv420p", Fraction(50), 100, None, 0.008),
    "avi": ("h264", "yuv420p", Fraction(50), 102, None, 0.002),  # MPEG-4 part 2 gets H.264; one slot is empty
    "hevc10": ("hevc", "yuv420p10le", Fraction(50), 100, "hvc1", 0.002),
}


@pytest.mark.parametrize("case", sorted(FORMATS))
def test_each_format_stays_in_its_container_with_exactly_twice_the_rate(clips, tmp_path, case):
    source = _source(case, clips)
    codec, pix_fmt, rate, frames, tag, sync = FORMATS[case]
    info = probe(source, ffmpeg=FF)
    target = tmp_path / f"out{source.suffix}"
    report = run_convert(source, target, engine=BLEND, output=QUICK, resume=ResumeConfig())
    assert report.output == target and target.exists()
    out = probe_json(target)
    video = stream(out, "video")
    assert (video["codec_name"], video["pix_fmt"]) == (codec, pix_fmt)
    assert Fraction(video["r_frame_rate"]) == rate == 2 * info.fps
    assert int(video["nb_read_frames"]) == frames == report.frames_out
    if tag:
        assert video["codec_tag_string"] == tag
    assert_audio_in_sync(source, target, tolerance=sync)


def test_the_avi_with_a_skipped_frame_is_read_at_its_nominal_rate(clips):
    info = probe(_source("avi", clips), ffmpeg=FF)
    # ffmpeg's own AVI muxer left index entry 1 empty: 50 frames in 51 slots at 25 fps.
    assert info.vfr and info.nominal_fps == 25 and info.frame_count == 50 and info.duration == 2 + Fraction(1, 25)
    timeline = build_timeline(info, BLEND)
    assert timeline.fps_out == 50 and timeline.frames_out == 102


def test_hdr10_metadata_and_pq_tags_are_kept(clips, tmp_path):
    source = _source("pq", clips)
    target = tmp_path / "out.mp4"
    run_convert(source, target, engine=BLEND, output=OutputConfig(preset="ultrafast"), resume=ResumeConfig())
    before, after = fidelity.describe(source), fidelity.describe(target)
    assert after["hdr10"] == before["hdr10"] == ["Content", "Mastering"]
    side = {}
    for path in (source, target):
        frame = fidelity.ffprobe(path, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames")["frames"][0]
        side[path] = [item for item in frame["side_data_list"] if "User Data" not in item["side_data_type"]]
    assert side[source] == side[target]
    video, original = stream(probe_json(target), "video"), stream(probe_json(source), "video")
    for key in ("color_transfer", "color_primaries", "color_space", "pix_fmt"):
        assert video[key] == original[key], key
    assert video["color_transfer"] == "smpte2084" and video["codec_tag_string"] == "hvc1"


def test_audio_an_mp4_cannot_hold_is_re_encoded_not_dropped(tmp_path):
    source = make_clip(tmp_path / "vorbis.mkv", seconds=1.0, fps="25", size="160x90", extra_output_args=["-c:a", "libvorbis"])
    assert stream(probe_json(source), "audio")["codec_name"] == "vorbis"
    report = run_convert(source, tmp_path / "out.mp4", engine=BLEND, output=QUICK)
    assert report.output.suffix == ".mp4"
    assert [s["codec_name"] for s in probe_json(report.output)["streams"]] == ["h264", "aac"]


def test_with_container_null_a_container_that_cannot_hold_the_codec_becomes_mkv(clips, tmp_path):
    source = _source("webm", clips)
    report = run_convert(source, tmp_path / "out.webm", engine=BLEND, output=QUICK.model_copy(update={"codec": "libx264"}))
    assert report.output == tmp_path / "out.mkv" and not (tmp_path / "out.webm").exists()
    assert [s["codec_name"] for s in probe_json(report.output)["streams"]] == ["h264", "opus"]


def test_an_explicit_pair_that_cannot_work_is_refused_before_any_frame(clips, tmp_path):
    source = _source("webm", clips)
    target = tmp_path / "out.webm"
    done = subprocess.run([sys.executable, "-m", "midframe", "interpolate", str(source), "-o", str(target),
                           "--codec", "libx264", "--engine", "blend", "-q"], capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert "--codec" in message and "libx264" in message and ".webm" in message and "output.container" in message
    assert "job-" not in message and "preflight" not in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="output.codec"):
        run_convert(source, target, engine=BLEND, output=QUICK.model_copy(update={"codec": "libx264", "container": "webm"}))


# --- verified before it is published ------------------------------------------------------------------------


def test_a_drifted_stream_fails_verification_with_the_figures(tmp_path):
    source = make_clip(tmp_path / "clip.mkv", seconds=1.0, fps="25", size="160x90")
    good = run_convert(source, tmp_path / "good.mkv", engine=BLEND, output=QUICK)
    info = probe(source, ffmpeg=FF)
    from midframe.engine.plan import OutputPlan, StreamPlan
    from midframe.engine.writer import EncodeSpec

    plan = OutputPlan(encode=EncodeSpec(width=160, height=90, fps=Fraction(50), input_pix_fmt="rgb24"), container="mkv",
                      segment_ext=".mkv", keep_rotation=True, rotation=0, segment_frames=50,
                      streams=(StreamPlan(index=1, kind="audio", codec="aac", action="copy"),))
    timeline = build_timeline(info, BLEND)
    verify_output(good.output, info=info, plan=plan, timeline=timeline, ffmpeg=FF)
    late = tmp_path / "late.mkv"
    done = run([FF.ffmpeg, "-v", "error", "-i", str(good.output), "-itsoffset", "0.2", "-i", str(good.output),
                "-map", "0:v", "-map", "1:a", "-c", "copy", str(late)])
    assert done.returncode == 0, done.stderr
    for ffmpeg in (FF, FFmpeg(FF.ffmpeg, None)):  # with ffprobe, and with a bundled ffmpeg alone
        verify_output(good.output, info=info, plan=plan, timeline=timeline, ffmpeg=ffmpeg)
        with pytest.raises(VerificationError, match=r"stream #1 \(audio\) starts 0\.2\d\d s away") as failed:
            verify_output(late, info=info, plan=plan, timeline=timeline, ffmpeg=ffmpeg)
        assert failed.value.video_ok


def test_a_wrong_segment_is_caught_before_publishing_and_the_file_never_appears(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", seconds=1.2, fps="25", size="160x90")
    target = tmp_path / "out.mp4"
    work = tmp_path / ".out.work"
    # A first run stopped after its segments were written (the join is where a stop lands last).
    from midframe.engine.conversion import JobControl

    control = JobControl()
    resume = ResumeConfig(segment_frames=12)

    def stop_at_the_end(progress):
        if progress.frames_done >= progress.frames_total:
            control.abort("stopped")

    with pytest.raises(Exception):  # noqa: B017 (any way of stopping will do: the test is about the manifest)
        run_convert(source, target, engine=BLEND, output=QUICK, resume=resume, work_dir=work, control=control,
                    on_progress=stop_at_the_end)
    manifest = load_manifest(work)
    assert manifest is not None and len(manifest.segments) == 5
    # An early segment replaced by one with fewer frames and the same size: resume trusts all but the
    # last two segments (their size is right), so only the check before publishing can catch it.
    first = work / manifest.segments[0].file
    short = tmp_path / "short.mp4"
    assert run([FF.ffmpeg, "-v", "error", "-i", str(first), "-frames:v", "6", "-c", "copy", str(short)]).returncode == 0
    padding = first.stat().st_size - short.stat().st_size - 8
    assert padding > 0
    first.write_bytes(short.read_bytes() + (padding + 8).to_bytes(4, "big") + b"free" + bytes(padding))
    with pytest.raises(VerificationError, match="54 video frames, not the planned 60") as failed:
        run_convert(source, target, engine=BLEND, output=QUICK, resume=resume, work_dir=work)
    assert not failed.value.video_ok
    assert not target.exists() and not work.exists()  # the bad segments are not trusted again
    report = run_convert(source, target, engine=BLEND, output=QUICK, resume=resume, work_dir=work)
    assert report.frames_out == 60 and target.exists()


def test_resume_reads_back_only_the_last_two_segments(tmp_path):
    segments = [Segment(file=f"seg-{i}.mkv", start=10 * i, end=10 * i + 10, source_end=5 * i + 5, size=100)
                for i in range(8)]
    for segment in segments:
        (tmp_path / segment.file).write_bytes(bytes(100))
    manifest = Manifest(source="x", fingerprint=None, destination_suffix=".mkv", engine={}, output={}, resume={},
                        plan={}, frames_out=80, segments=list(segments))
    read: list[str] = []

    def count(path: Path, *, ffmpeg) -> int:
        read.append(path.name)
        return 10

    assert verified_segments(manifest, tmp_path, ffmpeg=FF, count_frames=count) == segments
    assert read == ["seg-6.mkv", "seg-7.mkv"]
    (tmp_path / "seg-3.mkv").write_bytes(bytes(99))  # cut short: its size gives it away, no read needed
    read.clear()
    assert verified_segments(manifest, tmp_path, ffmpeg=FF, count_frames=count) == segments[:3]
    assert read == []


def test_the_benchmark_prints_its_table(clips, tmp_path):
    measured = fidelity.Measured(case="x", source="in", output="out", midframe=fidelity.Closeness(45.0, (0.1, 0, 0)),
                                 reencode=fidelity.Closeness(45.2, (0.05, 0, 0)))
    table = fidelity.markdown([measured])
    assert "| x | in | out | 45.00 dB, shift +0.10/+0.00/+0.00 |" in table and "| +0.20 dB | +0.050/255 |" in table
    json.dumps(measured.details)
