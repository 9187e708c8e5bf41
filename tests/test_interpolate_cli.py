"""`midframe interpolate` as a user runs it: a subprocess, a report, Ctrl-C, a kill, --resume, real footage."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

from midframe.config import Config, EngineConfig, OutputConfig, ResumeConfig, resolve_paths
from midframe.engine.conversion import JobControl
from midframe.engine.manifest import load_manifest
from midframe.engine.probe import probe
from midframe.errors import Aborted
from midframe.interpolate_command import interpolate_file, work_dir_for
from tests.engine_helpers import FF, LOSSLESS, assert_audio_in_sync, run_convert
from tests.media import make_clip, read_frames

ROOT = Path(__file__).resolve().parents[1]
# Runs the CLI with the blend engine slowed down by $MIDFRAME_TEST_DELAY seconds a batch.
SLOW_CLI = (
    "import dataclasses, sys; from midframe.engine import interpolators as i; "
    "i.ENGINES['blend'] = dataclasses.replace(i.ENGINES['blend'], factory='tests.engine_helpers:create'); "
    "from midframe.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    return make_clip(folder / "holiday.mp4", seconds=2.0, fps="25", size="128x96",
                     extra_output_args=["-bf", "3", "-g", "10"])


@pytest.fixture()
def config(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"daemon: {{state_dir: {tmp_path / 'state'}}}\n", encoding="utf-8")
    return path


def midframe(*args: str, config: Path, env: dict[str, str] | None = None, slow: bool = False, **kwargs):
    cmd = [sys.executable, "-c", SLOW_CLI] if slow else [sys.executable, "-m", "midframe"]
    return subprocess.Popen(
        [*cmd, "interpolate", *args, "--config", str(config)],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_factor_two_with_a_report(clip, tmp_path, config):
    out, report_path = tmp_path / "holiday.50fps.mp4", tmp_path / "report.json"
    code, err = finish(midframe(str(clip), "-o", str(out), "--factor", "2", "--engine", "blend", "--preset",
                                "ultrafast", "--report", str(report_path), config=config))
    assert code == 0, err
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["frames_in"] == 50 and report["frames_out"] == 100
    assert report["engine"] == "blend" and report["engine_requested"] == "blend" and report["device"] == "cpu"
    assert report["wall_s"] > 0 and report["model_s"] >= 0
    assert probe(out, ffmpeg=FF).frame_count == 100
    assert_audio_in_sync(clip, out)
    assert "100/100 frames (100%)" in err  # a log line when stderr is not a terminal
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_progress_bar_on_a_terminal(clip, tmp_path, config):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(tmp_path / "out.mkv"), "--engine",
         "blend", "--preset", "ultrafast", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=follower,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert proc.wait(60) == 0
    text = screen.decode("utf-8", "replace")
    assert "100%" in text and "100/100" in text and "frame/s" in text


def _wait_for_segments(work: Path, count: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manifest = load_manifest(work) if (work / "manifest.json").exists() else None
        if manifest is not None and len(manifest.segments) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the conversion made no progress")


@pytest.fixture(scope="module")
def reference(clip, tmp_path_factory) -> np.ndarray:
    target = tmp_path_factory.mktemp("cli-ref") / "ref.mkv"
    run_convert(clip, target, output=LOSSLESS, resume=ResumeConfig(segment_frames=8),
                engine=EngineConfig(name="blend", factor=2, batch_size=2))
    return read_frames(target)


LOSSLESS_ARGS = ("--engine", "blend", "--factor", "2", "--batch-size", "2", "--codec", "ffv1", "--pix-fmt", "gbrp",
                 "--segment-frames", "8")


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_stopped_run_resumes_to_the_identical_output(clip, reference, tmp_path, config, how):
    out = tmp_path / "out.mkv"
    work = work_dir_for(out)
    proc = midframe(str(clip), "-o", str(out), *LOSSLESS_ARGS, config=config, slow=True,
                    env={"MIDFRAME_TEST_DELAY": "0.1"})
    _wait_for_segments(work, 4, proc)
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
        code, err = finish(proc)
        assert code == 130
        assert err.strip().splitlines()[-1].startswith("midframe: error: interrupted") and "--resume" in err
    else:
        proc.kill()
        proc.communicate()
    assert not out.exists() and work.is_dir()
    done = load_manifest(work).frames_done
    assert done >= 32

    report_path = tmp_path / "report.json"
    code, err = finish(midframe(str(clip), "-o", str(out), *LOSSLESS_ARGS, "--resume", "--report", str(report_path),
                                "-q", config=config))
    assert code == 0, err
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["resumed_from_frame"] >= done if how == "ctrl-c" else report["resumed_from_frame"] > 0
    assert np.array_equal(read_frames(out), reference)
    assert not work.exists()


def test_without_resume_an_old_work_folder_is_discarded(clip, tmp_path):
    out = tmp_path / "out.mkv"
    paths = resolve_paths(Config(daemon={"state_dir": str(tmp_path / "state")}))
    control = JobControl()
    settings = dict(engine=EngineConfig(name="blend"), output=OutputConfig(preset="ultrafast"),
                    resume=ResumeConfig(segment_frames=8), paths=paths, show_progress=False)

    def stop(progress):
        if progress.frames_done >= 40:
            control.abort()

    with pytest.raises(Aborted, match="--resume"):
        interpolate_file(clip, out, control=control, on_progress=stop, **settings)
    assert load_manifest(work_dir_for(out)).frames_done >= 40 and not out.exists()
    report = interpolate_file(clip, out, **settings)
    assert report.resumed_from_frame == 0 and out.exists()


@pytest.mark.slow
def test_bigbuckbunny_through_the_cli(bigbuckbunny, tmp_path, config):
    out, report_path = tmp_path / "bbb.50fps.mp4", tmp_path / "report.json"
    code, err = finish(midframe(str(bigbuckbunny), "-o", str(out), "--factor", "2", "--engine", "blend",
                                "--preset", "ultrafast", "--report", str(report_path), "-q", config=config),
                       timeout=300)
    assert code == 0, err
    source, result = probe(bigbuckbunny, ffmpeg=FF), probe(out, ffmpeg=FF)
    assert result.frame_count == 2 * source.frame_count == 264
    assert result.duration == source.duration and (result.width, result.height) == (1280, 720)
    assert_audio_in_sync(bigbuckbunny, out)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["frames_out"] == 264 and report["frames_interpolated"] + report["frames_static"] + report["frames_cut"] == 131


def test_a_chosen_engine_runs_or_the_command_fails_and_only_a_default_falls_back(clip, tmp_path, config):
    """With an empty models dir (XDG_CACHE_HOME elsewhere; the real cache is never touched)."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    out = tmp_path / "out.mkv"
    code, err = finish(midframe(str(clip), "-o", str(out), "--engine", "rife", config=config, env=env))
    assert code == 2 and "no RIFE weights installed" in err and "midframe models fetch" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]          # nothing written at all
    named = tmp_path / "named.yaml"
    named.write_text(config.read_text() + "engine: {name: rife}\n")
    code, err = finish(midframe(str(clip), "-o", str(out), config=named, env=env))
    assert code == 2 and "no RIFE weights installed" in err and not out.exists(), err
    report = tmp_path / "report.json"
    code, err = finish(midframe(str(clip), "-o", str(out), "--factor", "2", "--preset", "ultrafast", "--report",
                                str(report), config=config, env=env))
    assert code == 0 and "the dis engine is used instead" in err, err
    data = json.loads(report.read_text())
    # The default is auto (issue 21): without weights it is dis alone.
    assert (data["engine_requested"], data["engine"], data["frames_out"]) == ("auto", "dis", 100)
