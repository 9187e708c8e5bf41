"""One-shot ffmpeg/ffprobe commands end: a hung one is killed and reported as transient, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from midframe.engine import ffmpeg as ff
from midframe.engine.ffmpeg import MAX_TIMEOUT_S, process_group_options, run, timeout_for_bytes
from midframe.errors import TransientError
from tests.media import ffmpeg_exe, ffprobe_exe


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe (POSIX)")
def test_a_hung_probe_is_killed_and_named(tmp_path):
    """ffprobe on a named pipe nobody writes to blocks in open() for ever: a real hang."""
    fifo = tmp_path / "stalled share.mp4"
    os.mkfifo(fifo)
    program = ffprobe_exe() or ffmpeg_exe()
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        run([program, "-v", "error", "-i" if program == ffmpeg_exe() else "-show_format", str(fifo)], timeout=2)
    took = time.monotonic() - started
    message = str(caught.value)
    assert 1.9 < took < 10, took
    assert message.startswith(f"{os.path.basename(program)} did not finish within 2 s and was stopped: ")
    assert "'" + str(fifo) + "'" in message          # the whole command, quoted as a shell would
    assert str(os.path.dirname(program)) not in message.split(": ", 1)[0]


def test_a_command_that_ends_in_time_is_not_touched():
    done = run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x32:duration=0.2",
                "-f", "null", "-"], timeout=60)
    assert done.returncode == 0


def test_time_limits_grow_with_the_bytes_read_and_stay_under_the_watchdog():
    from midframe.daemon.jobs.liveness import STUCK_AFTER_S

    assert timeout_for_bytes(0) == 60
    two_hour_film = 4_000_000_000  # about 4 GB at 4.5 Mbit/s
    assert 60 + 150 < timeout_for_bytes(two_hour_film) < MAX_TIMEOUT_S  # a local disk reads it in ~20-40 s
    assert timeout_for_bytes(10 * two_hour_film) == MAX_TIMEOUT_S
    assert MAX_TIMEOUT_S < STUCK_AFTER_S
    assert ff.DEFAULT_TIMEOUT_S >= 60


def test_children_get_their_own_process_group():
    """Ctrl-C in a console goes to the console's process group; ffmpeg must not be in it.
    Windows is checked by its Popen options only (CREATE_NEW_PROCESS_GROUP = 0x200): not run here."""
    assert process_group_options("linux") == {"start_new_session": True}
    windows = process_group_options("win32")
    assert windows["creationflags"] & 0x200 and "start_new_session" not in windows
    if sys.platform.startswith("linux"):
        probe = ff.FFmpegProcess([sys.executable, "-c", "import os; print(os.getpgid(0))"], stdout=True)
        group = int(probe.stdout.read().decode())
        assert probe.wait(timeout=30) == 0
        assert group == probe.pid != os.getpgid(0)
        done = subprocess.run([sys.executable, "-c", "import os; print(os.getpgid(0))"], capture_output=True, text=True)
        assert int(done.stdout) == os.getpgid(0)  # (a plain child shares ours: the check means something)
