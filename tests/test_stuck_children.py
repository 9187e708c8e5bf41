"""Issue 19, findings 1, 2 and 9 below the daemon: every ffmpeg child has a progress deadline judged
only while midframe waits on it, a child killed by a signal or stalled is a ``ChildFailed`` (never a
verdict on the file), and a frame size over the limit is refused before decoding.

Real children throughout: real ffmpeg (and, where the point is a child that does nothing or only
computes, a real Python child), stopped with SIGSTOP or killed with SIGKILL mid-job on the real pipeline.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from midframe.config import config_from_mapping
from midframe.engine.children import Children, crashed, died_by_signal, notice_after, verdict
from midframe.engine.conversion import JobControl
from midframe.engine.ffmpeg import FFmpegProcess, find_ffmpeg, run
from midframe.engine.interpolators import create_interpolator
from midframe.engine.pipeline import convert
from midframe.errors import Aborted, ChildFailed, MediaError
from tests.media import declaring_huge_frames, ffmpeg_exe, make_clip

posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGSTOP and SIGKILL are POSIX signals")
PY = sys.executable


# --- the judgment (pure) ------------------------------------------------------------------------------


def test_verdict_judges_only_waits_and_bounds_a_stop():
    base = {"stall_s": 10.0, "stopping_since": None, "stop_grace_s": 5.0}
    assert verdict(now=100, waiting_since=None, progress_at=0, **base) is None        # not waited on: never
    assert verdict(now=100, waiting_since=95, progress_at=0, **base) is None          # waited 5 s of 10
    assert verdict(now=100, waiting_since=90, progress_at=0, **base) == "stalled"
    assert verdict(now=100, waiting_since=80, progress_at=95, **base) is None         # it moved 5 s ago
    stopping = {**base, "stopping_since": 96.0, "stop_idle_s": 2.0}
    assert verdict(now=100, waiting_since=99, progress_at=99.9, **stopping) is None   # 4 s into the grace
    assert verdict(now=101, waiting_since=100.5, progress_at=101, **stopping) == "stopped"  # progress or not
    assert verdict(now=100, waiting_since=90, progress_at=97.5, **stopping) == "stopped"    # 2 s idle since
    assert verdict(now=100, waiting_since=90, progress_at=98.5, **stopping) is None
    assert notice_after(120) == 15 and notice_after(4) == 1


def test_signals_and_crashes_by_platform():
    assert died_by_signal(-9, "linux") == 9 and died_by_signal(1, "linux") is None and died_by_signal(None) is None
    assert died_by_signal(-9, "win32") is None
    assert crashed(-11, "linux") and not crashed(1, "linux") and not crashed(0, "darwin")
    assert crashed(0xC0000005, "win32") and crashed(-1073741510, "win32") and not crashed(1, "win32")


# --- real children ---------------------------------------------------------------------------------------


def test_a_child_waited_on_without_progress_is_killed_and_said_stalled():
    children = Children(stall_s=1.0, poll_s=0.1)
    proc = FFmpegProcess([PY, "-c", "import time; time.sleep(30)"], stdout=True, children=children,
                         title="the decoder")
    started = time.monotonic()
    assert proc.read_into(memoryview(bytearray(16))) == 0   # the read ends when the child is killed
    took = time.monotonic() - started
    proc.wait(10)
    failure = proc.failure()
    assert isinstance(failure, ChildFailed) and failure.stalled and failure.command == "the decoder"
    assert 0.9 < took < 5, took
    assert str(failure) == f"the decoder made no progress for {failure.stalled_s:.0f} s and was stopped"


def test_a_computing_child_and_an_unread_one_are_not_stalled():
    """CPU time is progress (an encoder flushing its lookahead writes nothing for a while), and a child
    that nobody waits on (a decoder ahead of a slow model) is not judged at all."""
    children = Children(stall_s=1.0, poll_s=0.1)
    busy = FFmpegProcess([PY, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass\nprint('ok')"],
                         stdout=True, children=children)
    idle = FFmpegProcess([PY, "-c", "import time; time.sleep(3); print('ok')"], stdout=True, children=children)
    buffer = bytearray(2)
    assert busy.read_into(memoryview(buffer)) == 2 and bytes(buffer) == b"ok"   # 3 s of CPU, no output
    assert idle.read_into(memoryview(buffer)) == 2     # not waited on while it slept
    for proc in (busy, idle):
        assert proc.wait(10) == 0 and proc.failure() is None


def test_a_stop_ends_every_wait_within_its_grace_and_says_aborted():
    children = Children(stall_s=100.0, stop_grace_s=1.0, poll_s=0.1)
    proc = FFmpegProcess([PY, "-c", "import time; time.sleep(30)"], stdout=True, children=children)
    threading.Timer(0.3, children.stop, args=("stopped",)).start()
    started = time.monotonic()
    assert proc.read_into(memoryview(bytearray(4))) == 0
    assert time.monotonic() - started < 4
    proc.wait(10)
    assert isinstance(proc.failure(), Aborted)


@posix_only
def test_a_sigstopped_one_shot_ffmpeg_is_killed_as_stalled():
    """A real ffmpeg encoding (a one-shot command, like the join) stopped with SIGSTOP."""
    children = Children(stall_s=1.5, poll_s=0.1)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
           "testsrc2=size=320x240:rate=25:duration=600", "-f", "null", "-"]

    def stop_it() -> None:
        for _ in range(100):
            pids = children.pids()
            if pids:
                os.kill(pids[0], signal.SIGSTOP)
                return
            time.sleep(0.02)

    threading.Thread(target=stop_it).start()
    started = time.monotonic()
    with pytest.raises(ChildFailed) as caught:
        run(cmd, timeout=60, children=children, name="the muxer")
    assert caught.value.stalled and caught.value.command == "the muxer"
    assert str(caught.value).startswith("the muxer made no progress for ")
    assert 1.4 < time.monotonic() - started < 8


# --- the real pipeline --------------------------------------------------------------------------------

SETTINGS = {"engine": {"name": "blend", "factor": 2}, "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
            "resume": {"enabled": True, "segment_frames": 20}}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("stuck") / "clip.mkv", seconds=8, size="160x120", audio=False)


def decoder_pid() -> int:
    """The decoder among this process's children: the ffmpeg that writes raw frames to its stdout."""
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "rawvideo" in cmdline and cmdline[-1] == "pipe:1":
            return child.pid
    raise AssertionError("no decoder running")


def convert_and(clip: Path, tmp_path: Path, *, at_frame: int, action, control: JobControl | None = None,
                out: str = "out.mkv"):
    """Convert ``clip`` with the blend engine; ``action(decoder_pid)`` once ``at_frame`` output frames are made."""
    config = config_from_mapping(SETTINGS)
    done: list[int] = []

    def progress(report) -> None:
        if report.frames_done >= at_frame and not done:
            done.append(decoder_pid())
            action(done[0])

    return convert(clip, tmp_path / out, work_dir=tmp_path / "work", engine=config.engine, output=config.output,
                   resume=config.resume, make_interpolator=lambda s: create_interpolator(s, models_dir=tmp_path),
                   ffmpeg=find_ffmpeg(), control=control, on_progress=progress), done


@posix_only
def test_a_decoder_killed_by_sigkill_is_a_passing_failure_not_a_damaged_file(clip, tmp_path):
    """Finding 2: kill -9 (or the OOM killer) on the decoder mid-job."""
    with pytest.raises(ChildFailed) as caught:
        convert_and(clip, tmp_path, at_frame=30, action=lambda pid: os.kill(pid, signal.SIGKILL))
    assert not isinstance(caught.value, MediaError)
    assert caught.value.signal == signal.SIGKILL and not caught.value.stalled
    assert str(caught.value) == "the decoder was killed by signal 9 (SIGKILL)"


@posix_only
def test_a_stopped_decoder_is_killed_at_its_deadline_and_the_job_resumes(clip, tmp_path):
    """Finding 1 in the pipeline: SIGSTOP on the decoder; the deadline (2 s here) ends it, the next
    attempt resumes from the checkpoint and finishes."""
    stopped: list[int] = []

    def stop(pid: int) -> None:
        stopped.append(pid)
        os.kill(pid, signal.SIGSTOP)

    started = time.monotonic()
    with pytest.raises(ChildFailed) as caught:
        convert_and(clip, tmp_path, at_frame=60, action=stop, control=JobControl(children=Children(stall_s=2.0)))
    assert caught.value.stalled and caught.value.command == "the decoder"
    assert time.monotonic() - started < 30
    assert not psutil.pid_exists(stopped[0]) or psutil.Process(stopped[0]).status() == psutil.STATUS_ZOMBIE
    report, _ = convert_and(clip, tmp_path, at_frame=10**9, action=lambda pid: None)
    assert report.resumed_from_frame >= 40 and report.frames_out == 400


class SlowModel:
    """The real blend engine, whose first batch is as slow as RIFE's at 4K on a CPU (seconds) by a sleep:
    the one stand-in here, since no real model that slow fits in a test's time."""

    def __init__(self, engine, first_batch_s: float) -> None:
        self._engine = engine
        self._pause_s = first_batch_s

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def interpolate(self, batch):
        time.sleep(self._pause_s)
        self._pause_s = 0.0
        return self._engine.interpolate(batch)


def test_a_slow_model_leaves_the_decoder_unread_without_it_counting_as_stalled(tmp_path):
    """While the first batch takes 3 s, the decoder fills its queue (34 frames) and its pipe and then
    waits, idle, for three times the deadline: midframe is not waiting on it then, so nothing is
    killed and the job finishes."""
    short = make_clip(tmp_path / "short.mkv", seconds=3, size="160x120", audio=False)
    config = config_from_mapping({**SETTINGS, "engine": {**SETTINGS["engine"], "batch_size": 1}})
    control = JobControl(children=Children(stall_s=1.0, poll_s=0.1))
    report = convert(short, tmp_path / "out.mkv", work_dir=tmp_path / "work", engine=config.engine,
                     output=config.output, resume=config.resume, ffmpeg=find_ffmpeg(), control=control,
                     make_interpolator=lambda s: SlowModel(create_interpolator(s, models_dir=tmp_path), 3.0))
    assert report.frames_out == 150 and report.model_s >= 3.0
    assert report.extra["decode_wait_s"] < 1.0  # the decoder was ahead all along: only the model was slow


# --- finding 9: the frame size limit ------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> Path:
    return declaring_huge_frames(tmp_path_factory.mktemp("huge") / "huge.mkv")


def test_a_frame_size_over_the_limit_is_refused_before_decoding(huge, tmp_path):
    from midframe.engine.probe import probe

    info = probe(huge, ffmpeg=find_ffmpeg())
    assert (info.width, info.height) == (16000, 16000) and huge.stat().st_size < 600_000
    config = config_from_mapping(SETTINGS)
    with pytest.raises(MediaError) as caught:
        convert(huge, tmp_path / "out.mkv", work_dir=tmp_path / "work", engine=config.engine, output=config.output,
                resume=config.resume, make_interpolator=lambda s: pytest.fail("no engine for a refused file"),
                ffmpeg=find_ffmpeg())
    assert caught.value.path == huge and not caught.value.incomplete
    assert "16000x16000 frames (256.0 megapixels), more than engine.max_frame_pixels allows (33177600" \
        in caught.value.reason
    assert not (tmp_path / "work").exists() and not (tmp_path / "out.mkv").exists()


def test_the_limit_is_the_setting(clip, tmp_path):
    config = config_from_mapping({**SETTINGS, "engine": {**SETTINGS["engine"], "max_frame_pixels": 160 * 119}})
    with pytest.raises(MediaError, match=r"has 160x120 frames .* allows \(19040 pixels"):
        convert(clip, tmp_path / "out.mkv", work_dir=tmp_path / "work", engine=config.engine, output=config.output,
                resume=config.resume, make_interpolator=lambda s: pytest.fail("no engine for a refused file"),
                ffmpeg=find_ffmpeg())
