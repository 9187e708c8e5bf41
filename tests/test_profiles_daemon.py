"""Profiles in a real daemon: a file dropped into inbox/60fps/ comes out at exactly 60 fps, one in
inbox/slowmo-4x/ at the source's rate, four times as long, with its audio slowed down and its pitch
kept, and one in the inbox itself with the top-level --factor 2; every job records its profile and
settings, and `midframe jobs` shows the profile."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from tests.daemon_process import DaemonProcess
from tests.media import ffmpeg_exe, make_clip, probe_json, psnr, read_frames

pytestmark = pytest.mark.slow

CONFIG = {
    "engine": {"name": "blend", "factor": 2},
    "output": {"codec": "libx264"},
    "profiles": {
        "60fps": {"engine": {"target_fps": 60}},
        "slowmo-4x": {"engine": {"mode": "slowmo", "factor": 4},
                      "output": {"name": "{stem}.slowmo{factor}x{ext}", "slowmo_audio": "stretch"}},
    },
}


def video_of(path):
    info = probe_json(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    return info, video, audio


def audio_peak_hz(path, *, rate: int = 48000) -> tuple[float, float]:
    """The strongest frequency of the first audio stream, and its length in seconds."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
                          "-f", "s16le", "-"], check=True, capture_output=True).stdout
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]), len(samples) / rate


def test_each_folder_is_converted_with_its_profile(tmp_path):
    daemon = DaemonProcess(tmp_path / "run", CONFIG)
    media = tmp_path / "media"
    media.mkdir()
    clip = make_clip(media / "clip.mp4", seconds=2, fps="25", size="160x90")
    daemon.start()
    try:
        assert (daemon.inbox / "60fps").is_dir() and (daemon.inbox / "slowmo-4x").is_dir()   # made at start-up
        shutil.copy(clip, daemon.inbox / "plain.mp4")
        shutil.copy(clip, daemon.inbox / "60fps" / "fast.mp4")
        shutil.copy(clip, daemon.inbox / "slowmo-4x" / "slow.mp4")
        jobs = daemon.wait_jobs_final(3, timeout=120)
        listing = daemon.cli("jobs")
    finally:
        daemon.stop_if_running()
    assert {job["name"]: job["state"] for job in jobs} == {"plain.mp4": "done", "fast.mp4": "done", "slow.mp4": "done"}
    by_name = {job["name"]: job for job in jobs}
    assert {name: job["profile"] for name, job in by_name.items()} == {
        "plain.mp4": None, "fast.mp4": "60fps", "slow.mp4": "slowmo-4x"}
    assert by_name["fast.mp4"]["settings"]["engine"]["target_fps"] == "60"
    assert by_name["slow.mp4"]["settings"]["engine"]["mode"] == "slowmo"
    assert by_name["plain.mp4"]["settings"]["engine"] == {**by_name["plain.mp4"]["settings"]["engine"],
                                                          "factor": 2, "target_fps": None, "mode": "smooth"}
    assert "[60fps] fast.mp4" in listing.stdout and "[slowmo-4x] slow.mp4" in listing.stdout
    assert daemon.visible_outputs() == ["60fps/fast.60fps.mp4", "plain.50fps.mp4", "slowmo-4x/slow.slowmo4x.mp4"]
    assert (daemon.done / "60fps" / "fast.mp4").is_file() and (daemon.done / "slowmo-4x" / "slow.mp4").is_file()

    source = read_frames(clip)
    _, src_video, _ = video_of(clip)
    assert (src_video["r_frame_rate"], int(src_video["nb_read_frames"])) == ("25/1", 50)

    # The inbox itself: --factor 2, the same duration, every source frame kept at 2k.
    info, video, audio = video_of(daemon.outbox / "plain.50fps.mp4")
    assert video["r_frame_rate"] == "50/1" and int(video["nb_read_frames"]) == 100 and audio
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.05
    frames = read_frames(daemon.outbox / "plain.50fps.mp4")
    assert min(psnr(frames[2 * k], source[k]) for k in range(0, 50, 7)) > 30

    # inbox/60fps: exactly 60 fps over the same two seconds.
    info, video, audio = video_of(daemon.outbox / "60fps" / "fast.60fps.mp4")
    assert video["r_frame_rate"] == "60/1" and video["avg_frame_rate"] == "60/1"
    assert int(video["nb_read_frames"]) == 120 and audio
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.05

    # inbox/slowmo-4x: the source's 25 fps, four times the frames and the duration; source frame k is
    # output frame 4k; the audio slowed to the same length with its 440 Hz tone still at 440 Hz.
    slowed = daemon.outbox / "slowmo-4x" / "slow.slowmo4x.mp4"
    info, video, audio = video_of(slowed)
    assert video["r_frame_rate"] == "25/1" and int(video["nb_read_frames"]) == 200
    assert Fraction(video["duration"]) == 8 and abs(float(info["format"]["duration"]) - 8.0) < 0.05
    frames = read_frames(slowed)
    assert min(psnr(frames[4 * k], source[k]) for k in range(0, 50, 7)) > 30
    assert len(audio) == 1 and audio[0]["codec_name"] == "aac"
    peak, seconds = audio_peak_hz(slowed)
    source_peak, source_seconds = audio_peak_hz(clip)
    assert abs(source_peak - 440) < 2 and abs(peak - 440) < 2
    assert abs(seconds - 4 * source_seconds) < 0.1


def test_slow_motion_without_stretch_leaves_the_audio_out(tmp_path):
    from midframe.config import config_from_mapping, resolve_paths
    from midframe.interpolate_command import interpolate_file

    config = config_from_mapping({"engine": {"name": "blend", "mode": "slowmo", "factor": 3},
                                  "output": {"preset": "ultrafast"}})
    clip = make_clip(tmp_path / "clip.mkv", seconds=1, fps="30000/1001", size="160x90", subtitles=True)
    report = interpolate_file(clip, tmp_path / "out.mkv", engine=config.engine, output=config.output,
                              resume=config.resume, paths=resolve_paths(config), show_progress=False)
    info, video, audio = video_of(tmp_path / "out.mkv")
    assert video["r_frame_rate"] == "30000/1001" and report.fps_out == str(Fraction(30000, 1001))
    assert int(video["nb_read_frames"]) == 3 * int(video_of(clip)[1]["nb_read_frames"])
    assert audio == [] and not any(s["codec_type"] == "subtitle" for s in info["streams"])
