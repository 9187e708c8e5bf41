"""The codec/container tables: the rules of ``codec: auto`` and ``container: null``, checked against real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midframe.engine import formats
from midframe.engine.ffmpeg import run
from tests.engine_helpers import FF

SOURCE_CODECS = ["h264", "hevc", "vp9", "vp8", "av1", "mpeg4", "mjpeg", "prores", "dvvideo", "wmv3", "mpeg2video",
                 "ffv1", "theora"]
EXTENSIONS = sorted(formats.CONTAINERS) + ["wmv", "mpg", "ogv", "asf", ""]
AUDIO = ["aac", "mp3", "opus", "vorbis", "flac", "ac3", "pcm_s16le", "truehd", "alac"]
AUDIO_MADE_BY = {"aac": "aac", "libopus": "opus", "libmp3lame": "mp3", "ac3": "ac3"}
SUBTITLES = ["subrip", "mov_text", "ass", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle"]


@pytest.mark.parametrize(("codec", "depth", "encoder"), [
    ("h264", 8, "libx264"), ("h264", 10, "libx264"), ("hevc", 10, "libx265"), ("hevc", 8, "libx265"),
    ("vp9", 8, "libvpx-vp9"), ("vp8", 8, "libvpx-vp9"), ("av1", 10, "libsvtav1"),
    ("mpeg4", 8, "libx264"), ("mjpeg", 8, "libx264"), ("prores", 10, "libx265"), ("dvvideo", 8, "libx264"),
    ("wmv3", 8, "libx264"),
])
def test_the_video_codec_follows_the_source(codec, depth, encoder):
    assert formats.follow_source(codec, bit_depth=depth) == encoder


def test_the_container_is_the_sources_when_it_holds_everything():
    choice = formats.choose_container(".webm", video_codec="vp9", subtitles=[])
    assert choice == formats.ContainerChoice("webm", None)
    assert formats.choose_container(".AVI", video_codec="h264", subtitles=[]).container == "avi"
    assert formats.choose_container(".mp4", video_codec="hevc", subtitles=["mov_text"]).container == "mp4"
    # Text subtitles are converted, so they never force another container; bitmap ones do.
    assert formats.choose_container(".mp4", video_codec="h264", subtitles=["subrip"]).container == "mp4"
    lost = formats.choose_container(".mp4", video_codec="h264", subtitles=["hdmv_pgs_subtitle"])
    assert lost.container == "mkv" and "hdmv_pgs_subtitle" in lost.reason


def test_otherwise_mkv_with_the_reason():
    webm = formats.choose_container(".webm", video_codec="h264", subtitles=[])
    assert webm.container == "mkv" and "cannot hold h264" in webm.reason
    assert formats.choose_container(".wmv", video_codec="h264", subtitles=[]).container == "mkv"
    assert formats.choose_container(".mpg", video_codec="h264", subtitles=[]).container == "mkv"


def test_audio_is_re_encoded_to_the_best_fit_never_dropped():
    assert formats.audio_plan("vorbis", "mp4") == "aac"
    assert formats.audio_plan("aac", "webm") == "libopus"
    assert formats.audio_plan("opus", "webm") == "copy" and formats.audio_plan("mp3", "avi") == "copy"
    assert formats.audio_plan("truehd", "mkv") == "copy"
    assert formats.audio_encoder_for("libmp3lame", 6) == "ac3" and formats.audio_encoder_for("libmp3lame", 2) == "libmp3lame"
    assert formats.audio_bitrate("aac", 2) == "192k" and formats.audio_bitrate("aac", 6) == "512k"
    assert formats.audio_bitrate("libmp3lame", 2) == "320k"


def test_subtitles_are_copied_converted_or_unplaceable():
    assert formats.subtitle_plan("mov_text", "mkv") == "srt"
    assert formats.subtitle_plan("subrip", "mp4") == "mov_text"
    assert formats.subtitle_plan("subrip", "webm") == "webvtt"
    assert formats.subtitle_plan("dvd_subtitle", "mkv") == "copy"
    assert formats.subtitle_plan("dvd_subtitle", "mp4") is None
    assert formats.subtitle_plan("subrip", "avi") is None


def test_explicit_pairs_that_cannot_work_name_both_settings():
    problem = formats.settings_problem("libx264", "webm")
    assert problem is not None
    assert "output.codec" in problem and "--codec" in problem and "output.container" in problem
    assert "libx264" in problem and ".webm" in problem and "libvpx-vp9" in problem
    assert formats.settings_problem("libx265", ".MP4") is None
    assert formats.settings_problem("auto", "webm") is None
    assert formats.settings_problem("libx264", None) is None
    assert formats.settings_problem("some-new-encoder", "webm") is None  # the trial encode judges it
    assert formats.settings_problem("h264_nvenc", "webm") is not None


def test_codec_auto_with_an_explicit_container_takes_what_it_holds():
    assert formats.encoder_for_container("h264", bit_depth=8, container="webm") == "libvpx-vp9"
    assert formats.encoder_for_container("av1", bit_depth=10, container="webm") == "libsvtav1"
    assert formats.encoder_for_container("vp9", bit_depth=8, container="mp4") == "libvpx-vp9"
    assert formats.encoder_for_container("vp9", bit_depth=8, container="mov") == "libx264"
    assert formats.encoder_for_container("vp9", bit_depth=10, container="mov") == "libx265"
    assert formats.encoder_for_container("h264", bit_depth=8, container="xyz") == "libx264"


def test_tags_filters_and_pixel_formats():
    assert formats.video_tag("hevc", "mp4") == "hvc1" and formats.video_tag("hevc", "mkv") is None
    assert formats.video_tag("h264", "mov") is None
    assert formats.join_bitstream_filter("h264", "avi") == "h264_mp4toannexb"
    assert formats.join_bitstream_filter("h264", "mp4") is None
    assert formats.pix_fmt_for("yuv420p", encoder="libx265", bit_depth=10) == "yuv420p10le"
    assert formats.pix_fmt_for("yuv420p", encoder="libx265", bit_depth=12) == "yuv420p12le"
    assert formats.pix_fmt_for("yuv420p", encoder="libsvtav1", bit_depth=12) == "yuv420p10le"
    assert formats.pix_fmt_for("yuv420p", encoder="libx264", bit_depth=8) == "yuv420p"
    assert formats.pix_fmt_for("gbrp", encoder="ffv1", bit_depth=10) == "gbrp"
    assert formats.codec_of_encoder("hevc_nvenc") == "hevc" and formats.codec_of_encoder("mpeg2_qsv") == "mpeg2video"


@given(
    codec=st.sampled_from(SOURCE_CODECS),
    depth=st.sampled_from([8, 10, 12]),
    ext=st.sampled_from(EXTENSIONS),
    requested=st.sampled_from(["auto", "libx264", "libx265", "libvpx-vp9", "libsvtav1", "ffv1", "mpeg4"]),
    audio=st.lists(st.sampled_from(AUDIO), max_size=3),
    subtitles=st.lists(st.sampled_from(SUBTITLES), max_size=3),
)
def test_the_rules_always_give_a_container_that_holds_the_video_and_keep_all_audio(
    codec, depth, ext, requested, audio, subtitles,
):
    encoder = formats.follow_source(codec, bit_depth=depth) if requested == "auto" else requested
    made = formats.codec_of_encoder(encoder)
    choice = formats.choose_container(ext, video_codec=made, subtitles=subtitles)
    assert choice.container in (ext.lower(), "mkv")
    assert (choice.reason is None) == (choice.container == ext.lower())
    spec = formats.container_of(choice.container)
    assert spec is not None and spec.holds("video", made)
    assert formats.settings_problem(encoder, choice.container) is None
    for stream in audio:
        action = formats.audio_plan(stream, choice.container)
        assert action == "copy" or not spec.holds("audio", stream)
        assert action == "copy" or spec.holds("audio", AUDIO_MADE_BY[action])
    if choice.container != "mkv":
        assert all(formats.subtitle_plan(stream, choice.container) for stream in subtitles)
    # With an explicit container, auto picks an encoder it holds.
    if formats.container_of(ext) is not None:
        picked = formats.encoder_for_container(codec, bit_depth=depth, container=ext)
        assert formats.container_of(ext).holds("video", formats.codec_of_encoder(picked))


# --- the tables against the real ffmpeg --------------------------------------------------------------------

VIDEO_ENCODERS = {"h264": ["libx264", "-preset", "ultrafast"], "hevc": ["libx265", "-preset", "ultrafast",
                  "-x265-params", "log-level=error"], "vp9": ["libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
                  "av1": ["libsvtav1", "-preset", "12"], "mpeg4": ["mpeg4"]}
AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame", "opus": "libopus", "vorbis": "libvorbis", "ac3": "ac3"}


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    made: dict[str, Path] = {}
    for codec, args in VIDEO_ENCODERS.items():
        path = made[codec] = folder / f"{codec}.mkv"
        done = run([FF.ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=25:d=0.2",
                    "-c:v", *args, "-pix_fmt", "yuv420p", str(path)])
        assert done.returncode == 0, done.stderr
    for codec, encoder in AUDIO_ENCODERS.items():
        path = made[codec] = folder / f"{codec}.mka"
        done = run([FF.ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=0.2:r=48000", "-c:a", encoder, str(path)])
        assert done.returncode == 0, done.stderr
    return made


def test_what_the_tables_say_a_container_holds_ffmpeg_really_writes(streams, tmp_path):
    failures = []
    for ext in sorted({e for e in formats.CONTAINERS if e not in ("m4v", "mts")}):
        spec = formats.CONTAINERS[ext]
        for kind, table in (("video", VIDEO_ENCODERS), ("audio", AUDIO_ENCODERS)):
            for codec in table:
                if not spec.holds(kind, codec):
                    continue
                bsf = formats.join_bitstream_filter(codec, ext) if kind == "video" else None
                tag = formats.video_tag(codec, ext) if kind == "video" else None
                target = tmp_path / f"{kind}-{codec}.{ext}"
                done = run([FF.ffmpeg, "-v", "error", "-y", "-i", str(streams[codec]), "-c", "copy",
                            *(["-bsf:v", bsf] if bsf else []), *(["-tag:v", tag] if tag else []), str(target)])
                if done.returncode != 0:
                    failures.append(f"{codec} in .{ext}: {done.tail(1)}")
    assert not failures, failures
