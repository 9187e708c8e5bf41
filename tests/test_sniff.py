"""What counts as a video: the pure rules, then real files through the real probe (real containers
accepted, mislabelled ones and hundreds of seeds of random bytes refused)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest

from midframe.engine.ffmpeg import find_ffmpeg
from midframe.engine.probe import probe
from midframe.engine.sniff import container_refusal, frames_refusal
from midframe.errors import MediaError
from tests.media import NOISE_TAKEN_FOR_VIDEO, ffmpeg_exe, make_clip, noise

MOV = "mov,mp4,m4a,3gp,3g2,mj2"


@pytest.mark.parametrize(("ext", "format_name", "score"), [
    (".mp4", MOV, 100), (".MOV", MOV, 100), (".m4v", MOV, 100), (".m4v", "m4v", 50), (".mkv", "matroska,webm", 100),
    (".webm", "matroska,webm", 100), (".ts", "mpegts", 50), (".m2ts", "mpegts", 50), (".mpg", "mpeg", 26),
    (".mpg", "mpeg", 25), (".h264", "h264", 51), (".h263", "h263", 25), (".wmv", "asf", 100), (".flv", "flv", 100),
    (".avi", "avi", None), (".mkv", "matroska,webm", None), (".bin", MOV, 100), ("", "matroska,webm", 100),
])
def test_containers_the_name_allows_are_accepted(ext, format_name, score):
    assert container_refusal(extension=ext, format_name=format_name, probe_score=score) is None


@pytest.mark.parametrize(("ext", "format_name", "score", "reason"), [
    (".mp4", "h263", 25, "headerless h263 stream"),
    (".mkv", "h263", 50, "headerless h263 stream"),
    (".avi", "mpegvideo", None, "headerless mpegvideo stream"),
    (".bin", "h264", 51, "headerless h264 stream"),
    (".m4v", "m4v", 1, "only its name .m4v matched"),
    (".mp4", "mp3", 24, "too uncertain: probe score 24 of 100"),
    (".bin", "mp3", 25, "too uncertain"),
    (".mp4", "matroska,webm", 100, "is a Matroska/WebM file, not what its extension .mp4 names; rename it to .mkv"),
    (".mkv", MOV, 100, "is an MP4/QuickTime file, not what its extension .mkv names; rename it to .mp4"),
    (".ts", "mpeg", 26, "rename it to .mpg"),
    (".mp4", "wav", 99, "is a wav format file, not what its extension .mp4 names"),
])
def test_raw_streams_weak_guesses_and_misnamed_containers_are_refused(ext, format_name, score, reason):
    refusal = container_refusal(extension=ext, format_name=format_name, probe_score=score)
    assert refusal is not None and reason in refusal


def test_a_frame_or_two_without_a_duration_is_not_a_video():
    assert "found 1 frame and no duration" in frames_refusal(frame_count=1, duration=None)
    assert "2 frames" in frames_refusal(frame_count=2, duration=None)
    assert frames_refusal(frame_count=3, duration=None) is None
    assert frames_refusal(frame_count=1, duration=Fraction(1, 25)) is None


# --- real files through the real probe ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ffmpeg():
    return find_ffmpeg()


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("containers")
    made = {name: make_clip(folder / name, seconds=0.4, size="64x48", audio=False)
            for name in ("a.mp4", "a.mkv", "a.mov", "a.avi", "a.ts", "a.flv")}
    for name, args in (("a.mpg", ["-c:v", "mpeg2video"]), ("a.wmv", ["-c:v", "wmv2"]),
                       ("raw.m4v", ["-c:v", "mpeg4", "-f", "m4v"]), ("raw.m2v", ["-c:v", "mpeg2video"])):
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(made["a.mkv"]), *args, str(folder / name)],
                       check=True)
        made[name] = folder / name
    return made


def test_real_containers_and_named_raw_streams_are_videos(containers, ffmpeg):
    for name, path in containers.items():
        assert probe(path, ffmpeg=ffmpeg).frame_count == 10, name


def test_a_real_container_under_another_container_s_name_is_refused_with_advice(containers, ffmpeg, tmp_path):
    misnamed = shutil.copy(containers["a.mkv"], tmp_path / "film.mp4")
    with pytest.raises(MediaError, match=r"film\.mp4: is a Matroska/WebM file, .* rename it to \.mkv"):
        probe(misnamed, ffmpeg=ffmpeg)


def test_hundreds_of_seeds_of_random_bytes_are_never_videos(tmp_path, ffmpeg):
    seeds = [*NOISE_TAKEN_FOR_VIDEO, *range(200)]

    def verdict(seed: int) -> str:
        name, data = noise(seed)
        path = tmp_path / name
        path.write_bytes(data)
        try:
            info = probe(path, ffmpeg=ffmpeg)
        except MediaError as exc:
            assert str(exc).startswith(f"{path}: "), exc
            return exc.reason
        return f"ACCEPTED as {info.format_name} {info.codec} {info.width}x{info.height}, {info.frame_count} frames"

    with ThreadPoolExecutor(2) as pool:
        verdicts = dict(zip(seeds, pool.map(verdict, seeds)))
    accepted = {seed: text for seed, text in verdicts.items() if text.startswith("ACCEPTED")}
    assert accepted == {}
    for seed in NOISE_TAKEN_FOR_VIDEO:                  # the ones the old probe took for H.263
        assert "headerless h263 stream" in verdicts[seed], verdicts[seed]
