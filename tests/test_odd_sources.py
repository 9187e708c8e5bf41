"""Sources that are odd but valid (issue 19, findings 3, 4 and 10), made by real ffmpeg and converted by
the real pipeline (blend engine: kept frames do not depend on it):

- RGB-coded and palette sources (libx264rgb's ``gbr`` H.264, midframe's own lossless FFV1 ``gbrp``,
  QuickTime RLE rgb24, PNG pal8, an animated GIF) convert, their kept frames as close to the source's
  RGB as a plain re-encode gets, and a file the encoder refuses fails alone instead of pausing;
- stream-copy trims and audio pre-roll pass verification (a real desync still fails);
- hundreds of streams are planned and verified in a handful of ffmpeg runs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import fidelity
from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.daemon.jobs.outcomes import Context, SourceFacts, classify
from midframe.engine import colour
from midframe.engine import ffmpeg as ffmpeg_module
from midframe.engine.ffmpeg import run
from midframe.engine.plan import build_timeline, make_plan
from midframe.engine.preflight import Preflight, Trial
from midframe.engine.probe import probe
from midframe.engine.verify import verify_output
from midframe.errors import MediaError, VerificationError
from tests.engine_helpers import FF, LOSSLESS, run_convert, stream
from tests.media import make_clip, probe_json, psnr, read_frames

BLEND = EngineConfig(name="blend", factor=2, batch_size=8)
QUICK = OutputConfig(preset="ultrafast")
SLOWMO = EngineConfig(name="blend", factor=4, batch_size=8, mode="slowmo")
STRETCH = OutputConfig(preset="ultrafast", slowmo_audio="stretch")


def ffmpeg(*args: str) -> None:
    done = run([FF.ffmpeg, "-v", "error", "-y", *args])
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("odd-sources")


@pytest.fixture(scope="module")
def footage(folder, bigbuckbunny) -> Path:
    """0.6 s of the real footage at 160x90 (lifelike colour and texture), losslessly kept."""
    target = folder / "bbb-160.mkv"
    ffmpeg("-t", "0.6", "-i", str(bigbuckbunny), "-an", "-vf", "scale=160:90:flags=lanczos", "-c:v", "ffv1",
           "-pix_fmt", "yuv444p", str(target))
    return target


RGB_CASES = {
    # case: (file name, encoder options); "midframe" is midframe's own lossless output (--codec ffv1 --pix-fmt gbrp)
    "libx264rgb": ("x264rgb.mp4", ["-c:v", "libx264rgb", "-preset", "ultrafast", "-crf", "8"]),
    "midframe-ffv1-gbrp": ("lossless.mkv", None),
    "qtrle-rgb24": ("rle.mov", ["-c:v", "qtrle", "-pix_fmt", "rgb24"]),
    "png-pal8": ("palette.mov", ["-c:v", "png", "-pix_fmt", "pal8"]),
    "gif": ("animated.gif", []),
}


def rgb_source(case: str, folder: Path, footage: Path) -> Path:
    name, options = RGB_CASES[case]
    target = folder / name
    if target.exists():
        return target
    if options is None:
        made = run_convert(footage, target, engine=BLEND, output=LOSSLESS, resume=ResumeConfig())
        assert made.output == target
    else:
        ffmpeg("-i", str(footage), *options, str(target))
    return target


# --- finding 3: RGB and palette sources -------------------------------------------------------------------------


def test_an_rgb_source_gets_a_yuv_matrix_of_its_own_never_the_gbr_tag():
    for pix_fmt, space in (("gbrp", "gbr"), ("bgr0", "gbr"), ("rgb24", None), ("pal8", None), ("bgra", None)):
        sd = colour.conversion_for(width=160, height=90, pix_fmt=pix_fmt, color_space=space, color_range="pc")
        hd = colour.conversion_for(width=1920, height=1080, pix_fmt=pix_fmt, color_space=space, color_range="pc")
        assert (sd.matrix, sd.full_range, sd.tag_space) == ("bt601", False, "smpte170m"), pix_fmt
        assert (hd.matrix, hd.full_range, hd.tag_space) == ("bt709", False, "bt709"), pix_fmt
    # A YUV source keeps its own tags, and gets one only where its own names no matrix swscale has.
    assert colour.conversion_for(width=160, height=90, pix_fmt="yuv420p", color_space="bt709",
                                 color_range="tv").tag_space is None
    untagged = colour.conversion_for(width=160, height=90, pix_fmt="yuv420p", color_space=None, color_range=None)
    assert untagged.tag_space is None
    assert colour.conversion_for(width=160, height=90, pix_fmt="yuv420p", color_space="ycgco",
                                 color_range="tv").tag_space == "smpte170m"
    gray = colour.conversion_for(width=160, height=90, pix_fmt="gray", color_space=None, color_range="pc")
    assert gray.full_range and not gray.rgb_source  # luma alone: its range is kept as any YUV source's


def assert_kept_frames_as_close_as_a_plain_re_encode(source: Path, output: Path, folder: Path, *, codec: str,
                                                     pix_fmt: str) -> None:
    """Kept frames (every other output frame) against the source decoded to RGB, as a viewer's player
    decodes each (by its own tags): as close as a plain re-encode with the same encoder, and no colour cast."""
    deep = pix_fmt.endswith(("10le", "12le"))
    rgb = "rgb48le" if deep else "rgb24"
    original = read_frames(source, pix_fmt=rgb)
    assert len(original) >= 14
    kept = read_frames(output, pix_fmt=rgb)[::2][: len(original)]
    plain = fidelity.plain_reencode(source, folder / "plain.mkv", codec=codec, pix_fmt=pix_fmt, preset="ultrafast",
                                    frames=len(original))
    again = read_frames(plain, pix_fmt=rgb)
    assert len(kept) == len(original) == len(again)
    ours, theirs = psnr(kept, original), psnr(again, original)
    assert ours >= theirs - 0.3, (ours, theirs)
    scale = 255.0 / 65535.0 if deep else 1.0
    shift = np.abs((kept.astype(float) - original.astype(float)).mean(axis=(0, 1, 2))) * scale
    assert shift.max() < 0.5, shift  # a wrong matrix moves saturated colours by several levels


@pytest.mark.parametrize("case", sorted(RGB_CASES))
def test_rgb_and_palette_sources_convert_with_their_colours(folder, footage, tmp_path, case):
    source = rgb_source(case, folder, footage)
    report = run_convert(source, tmp_path / "out.mkv", engine=BLEND, output=QUICK, resume=ResumeConfig())
    video = stream(probe_json(report.output), "video")
    # 8-bit 4:2:0 as the fidelity rules give any 8-bit source, limited range, the matrix named in its tags.
    assert (video["pix_fmt"], video.get("color_range"), video.get("color_space")) == ("yuv420p", "tv", "smpte170m")
    assert "an RGB source" in report.extra["colour"]
    assert_kept_frames_as_close_as_a_plain_re_encode(source, report.output, tmp_path, codec="libx264",
                                                     pix_fmt="yuv420p")


@pytest.mark.parametrize(("options", "codec", "pix_fmt"), [
    (["-c:v", "ffv1", "-pix_fmt", "gray"], "h264", "yuvj420p"),           # luma alone: its full range kept
    (["-c:v", "ffv1", "-pix_fmt", "gbrp10le"], "hevc", "yuv420p10le"),    # 10-bit RGB: 10-bit 4:2:0 HEVC
], ids=["gray", "gbrp10"])
def test_gray_and_deep_rgb_sources_convert_with_their_colours(footage, tmp_path, options, codec, pix_fmt):
    source = tmp_path / "source.mkv"
    ffmpeg("-i", str(footage), *options, str(source))
    report = run_convert(source, tmp_path / "out.mkv", engine=BLEND, output=QUICK, resume=ResumeConfig())
    video = stream(probe_json(report.output), "video")
    assert (video["codec_name"], video["pix_fmt"]) == (codec, pix_fmt)
    encoder = {"h264": "libx264", "hevc": "libx265"}[codec]
    assert_kept_frames_as_close_as_a_plain_re_encode(source, report.output, tmp_path, codec=encoder, pix_fmt=pix_fmt)


def test_midframe_s_own_lossless_output_converts_back_bit_exact(folder, footage, tmp_path):
    source = rgb_source("midframe-ffv1-gbrp", folder, footage)
    assert stream(probe_json(source), "video").get("color_space") == "gbr"
    report = run_convert(source, tmp_path / "again.mkv", engine=BLEND, output=LOSSLESS, resume=ResumeConfig())
    original = read_frames(source)
    kept = read_frames(report.output)[::2]
    assert kept.shape == original.shape and np.array_equal(kept, original)


def test_a_file_the_encoder_refuses_fails_alone_and_names_itself(tmp_path):
    # x265 takes no frame under 16x16: these settings work for other videos, so this file is the
    # problem (a MediaError, which fails this job alone), not output.codec (a ConfigError pauses all).
    tiny = make_clip(tmp_path / "tiny.mp4", seconds=0.4, size="8x8", audio=False)
    with pytest.raises(MediaError) as refused:
        run_convert(tiny, tmp_path / "out.mp4", engine=BLEND, output=QUICK.model_copy(update={"codec": "libx265"}))
    assert refused.value.path == tiny
    assert "8x8" in refused.value.reason and "too small" in refused.value.reason
    assert "work for other videos" in refused.value.reason and "output.codec libx265" in refused.value.reason
    outcome = classify(refused.value, Context(source=SourceFacts(tiny), name="tiny.mp4"))
    assert outcome.kind == "input" and "another output.codec" in outcome.advice  # failed alone, never a pause


def test_status_says_preparing_before_a_job_has_its_frame_count():
    from midframe.daemon.jobs.running import job_status
    from midframe.daemon.store.records import Job
    from midframe.engine.conversion import Progress
    from midframe.sentences import status_sentence

    job = Job(id=1, path="/in/many.mp4", name="many.mp4", relpath="many.mp4", size=1, mtime=0.0, fingerprint="x",
              state="running", queue_seq=1)
    current = job_status(job)                         # no frame count yet: probing and planning
    said = status_sentence({"state": "working", "queued": 0, "done": 0, "failed": 0, "current": current,
                            "paused_reason": None, "farm": None})
    assert said.splitlines()[1] == "  many.mp4: preparing the output (reading the file, trying the settings)"
    counting = job_status(job, Progress(frames_done=0, frames_total=100, fps=0.0, elapsed_s=1.0, eta_s=None))
    assert counting["preparing"] is None


@pytest.mark.slow
def test_the_daemon_converts_an_rgb_source_and_fails_an_unencodable_one_alone(folder, footage, tmp_path):
    from tests.daemon_process import DaemonProcess

    daemon = DaemonProcess(tmp_path / "run", {"output": {"codec": "libx265"}})
    files = {"rgb.mp4": rgb_source("libx264rgb", folder, footage),
             "tiny.mp4": make_clip(tmp_path / "tiny.mp4", seconds=0.4, size="8x8", audio=False),
             "plain.mkv": make_clip(tmp_path / "plain.mkv", seconds=0.4, size="64x48")}
    try:
        daemon.start()
        for name, path in files.items():
            shutil.copy(path, daemon.inbox / name)
        jobs = {job["name"]: job for job in daemon.wait_jobs_final(3, timeout=120)}
        status = daemon.status()
    finally:
        daemon.stop_if_running()
    assert {name: job["state"] for name, job in jobs.items()} == {"rgb.mp4": "done", "tiny.mp4": "failed",
                                                                 "plain.mkv": "done"}
    assert status["state"] != "paused" and status["paused_reason"] is None and "paused" not in daemon.log()
    error = (daemon.failed / "tiny.mp4.error.txt").read_text()
    assert "tiny.mp4" in error and "8x8" in error and "work for other videos" in error
    assert "another output.codec: a profile" in error and "copy it again" not in error
    assert stream(probe_json(daemon.outbox / "rgb.50fps.mp4"), "video")["pix_fmt"] == "yuv420p"


# --- finding 4: verification compares with the source's own timing -----------------------------------------


def test_a_stream_copy_trim_of_real_footage_passes_verification(bigbuckbunny, tmp_path):
    # Cut off the first 1.3 s without re-encoding: an edit list hides 33 video frames and 1 s of audio
    # before 0, and the last video frame is stored 1.5 frames long.
    trim = tmp_path / "trim.mp4"
    ffmpeg("-ss", "1.3", "-i", str(bigbuckbunny), "-c", "copy", str(trim))
    report = run_convert(trim, tmp_path / "out.mp4", engine=BLEND, output=QUICK, resume=ResumeConfig())
    info = probe(trim, ffmpeg=FF)
    assert report.frames_out == 2 * info.frame_count == 198
    out = probe_json(report.output)
    assert stream(out, "audio")["codec_name"] == "aac"
    assert int(stream(out, "video")["nb_read_frames"]) == 198


def audio_length(path: Path) -> float:
    """Seconds from the first audio packet that plays (not marked to discard) to the end of the last."""
    done = run([FF.ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
                "packet=pts_time,duration_time,flags", "-of", "csv=p=0", str(path)])
    rows = [line.split(",")[:3] for line in done.stdout.decode().split()]  # side data may follow
    kept = [(float(pts), float(length)) for pts, length, flags in rows if "D" not in flags]
    return max(pts + length for pts, length in kept) - min(pts for pts, _ in kept)


@pytest.fixture(scope="module")
def slow_sources(folder) -> dict[str, Path]:
    """Files whose audio does not start with the video. ``late-video.mp4``: the video starts 0.5 s after
    the audio (MP4 output plays nothing before the first frame, so that much audio is cut).
    ``preroll.mp4``: a 2 s clip cut at 0.507 s with its AAC stream-copied, so the audio starts
    1024-sample packets early (negative times, skip samples), its sound 16 ms into the first kept
    packet. ``trim.mkv``: a clip with 10-frame GOPs cut at 0.7 s all stream-copied into Matroska, its
    video starting 80 ms after its audio."""
    clip = make_clip(folder / "tone.mp4", seconds=2.0, size="160x120")
    preroll = folder / "preroll.mp4"
    ffmpeg("-ss", "0.507", "-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(preroll))
    gop = make_clip(folder / "gop.mp4", seconds=2.0, size="160x120", extra_output_args=["-g", "10", "-bf", "2"])
    trim = folder / "trim.mkv"
    ffmpeg("-ss", "0.7", "-i", str(gop), "-c", "copy", str(trim))
    late = folder / "late-video.mp4"
    ffmpeg("-itsoffset", "0.5", "-i", str(clip), "-i", str(clip), "-map", "0:v", "-map", "1:a", "-c", "copy", str(late))
    return {"preroll": preroll, "trim": trim, "late-video": late}


@pytest.mark.parametrize("case", ["preroll", "trim", "late-video"])
def test_slow_motion_of_audio_that_does_not_start_with_the_video_passes_and_a_real_desync_fails(
        slow_sources, tmp_path, case):
    source = slow_sources[case]
    report = run_convert(source, tmp_path / f"slow{source.suffix}", engine=SLOWMO, output=STRETCH,
                         resume=ResumeConfig())
    out = probe_json(report.output)
    info = probe(source, ffmpeg=FF)
    assert int(stream(out, "video")["nb_read_frames"]) == report.frames_out == 4 * info.frame_count
    lost = 4 * 0.5 if case == "late-video" else 0.0
    assert abs(audio_length(report.output) + lost - 4 * audio_length(source)) < 0.15  # slowed down with the video

    # The same plan against that output with its audio moved 0.25 s later: a desync, named with its figures.
    timeline = build_timeline(info, SLOWMO)
    work = tmp_path / ".plan"
    work.mkdir()
    plan = make_plan(info, engine=SLOWMO, output=STRETCH, resume=ResumeConfig(), destination=report.output,
                     work_dir=work, ffmpeg=FF, timeline=timeline)
    verify_output(report.output, info=info, plan=plan, timeline=timeline, ffmpeg=FF)
    late = tmp_path / f"late{source.suffix}"
    ffmpeg("-i", str(report.output), "-itsoffset", "0.25", "-i", str(report.output), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(late))
    with pytest.raises(VerificationError, match=r"stream #1 \(audio\) (starts|ends) 0\.[12]\d\d s away") as failed:
        verify_output(late, info=info, plan=plan, timeline=timeline, ffmpeg=FF)
    assert failed.value.video_ok


def test_audio_from_before_the_first_video_frame_may_be_cut_but_a_shift_still_fails():
    from fractions import Fraction as F

    from midframe.engine.probe import StreamSpan
    from midframe.engine.verify import Expected, KeptStream, problems

    def spans(start, end):
        return [StreamSpan(0, "video", "h264", F(0), F(2), F(0), F(2), 50, F(1, 25)),
                StreamSpan(1, "audio", "aac", F(start), F(end), F(start), F(end), 90, F(1024, 48000))]

    expected = Expected(frames=50, fps=F(25), streams=(KeptStream("audio", None, F(-1, 2), F(0), copied=False,
                                                                  slack=F(1024, 48000)),))
    assert problems(expected, spans(F(-1, 2), 2)) == ([], True)      # all of it
    assert problems(expected, spans(0, 2)) == ([], True)             # cut at the first video frame
    late = problems(expected, spans(F(-1, 4), F(9, 4)))[0]           # everything 0.25 s late
    assert len(late) == 1 and "ends 0.250 s away" in late[0]
    early = problems(expected, spans(F(-3, 4), F(7, 4)))[0]          # everything 0.25 s early
    assert len(early) == 2 and "starts -0.250 s away" in early[0]


# --- finding 10: hundreds of streams ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_streams(folder) -> Path:
    """2 s of 64x48 video with 500 audio streams (one short AAC tone, copied 500 times)."""
    tone = folder / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=2", "-c:a", "aac", "-b:a", "8k",
           str(tone))
    target = folder / "many.mp4"
    maps = [arg for _ in range(500) for arg in ("-map", "1:a")]
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=2", "-i", str(tone), "-map", "0:v", *maps,
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(target))
    return target


def test_five_hundred_audio_streams_are_planned_and_verified_in_a_few_ffmpeg_runs(many_streams, tmp_path, monkeypatch):
    runs: list[list[str]] = []

    def counted(real):
        def call(cmd, *args, **kwargs):
            runs.append(list(cmd))
            return real(cmd, *args, **kwargs)
        return call

    # Counted, not replaced: every child is the real ffmpeg or ffprobe (FFmpeg.run calls this one).
    monkeypatch.setattr(ffmpeg_module, "run", counted(ffmpeg_module.run))
    started = time.monotonic()
    report = run_convert(many_streams, tmp_path / "out.mp4", engine=BLEND, output=QUICK, resume=ResumeConfig())
    took = time.monotonic() - started
    out = probe_json(report.output)
    audio = [s for s in out["streams"] if s["codec_type"] == "audio"]
    assert len(audio) == 500 and all(s["codec_name"] == "aac" for s in audio)
    assert int(stream(out, "video")["nb_read_frames"]) == 100
    # One trial mux for all 500 (it was one per stream), one packet scan of the source's audio for all:
    # probe, trials, join and verification in a few runs (it took over 1000).
    assert len(runs) <= 16, [cmd[:3] for cmd in runs]
    print(f"500 audio streams: {took:.1f} s, {len(runs)} ffmpeg/ffprobe runs")


def test_the_streams_a_container_refuses_are_found_by_halving(tmp_path):
    # Ogg takes Opus but not AAC: one run for all, then halves until each refused stream stands alone.
    source = tmp_path / "mixed.mkv"
    codecs = ["libopus", "aac", "libopus", "libopus", "libopus", "aac", "libopus", "libopus"]
    inputs = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"]
    maps = [arg for number, codec in enumerate(codecs) for arg in ("-map", "0:a", f"-c:a:{number}", codec)]
    ffmpeg(*inputs, *maps, str(source))
    check = Preflight(tmp_path, "ogg", FF)
    tried: list[int] = []
    real_mux = check._mux

    def mux(path, streams):
        tried.append(len(streams))
        return real_mux(path, streams)

    check._mux = mux  # counted; the muxing itself is real
    try:
        passed = check.mux_streams(source, {index: Trial("copy") for index in range(len(codecs))})
    finally:
        check.cleanup()
    assert passed == {index for index, codec in enumerate(codecs) if codec == "libopus"}
    assert tried[0] == len(codecs) and len(tried) < 2 * len(codecs)
    assert check.mux_streams(source, {}) == set()
    assert Trial("aac", "96k").args(3) == ["-c:3", "aac", "-b:3", "96k"]
