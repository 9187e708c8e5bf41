"""Only regular files, opened without blocking: real FIFOs, sockets, devices and folders named like
videos in a real inbox, through the real scanner, the fingerprint and the probe."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

import pytest
from loguru import logger

from midframe.config import VIDEO_EXTENSIONS
from midframe.daemon.watcher import InboxScanner, can_open
from midframe.engine.ffmpeg import find_ffmpeg
from midframe.engine.probe import probe
from midframe.errors import MediaError
from midframe.fs.identity import Fingerprint, read_content
from midframe.regular import NotRegularFile, open_regular

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and unix sockets are POSIX")


def within(seconds: float, call, *args, **kwargs):
    """``call(*args, **kwargs)`` on a thread; fails the test (instead of hanging it) if it blocks."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call.__name__} blocked for {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def specials(tmp_path):
    """An inbox holding a video beside a FIFO, a socket, a device and a folder with video names."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.mp4").write_bytes(b"v" * 1000)
    os.mkfifo(inbox / "y.mp4")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(inbox / "s.mkv"))
    (inbox / "n.mov").symlink_to("/dev/null")
    (inbox / "d.avi").mkdir()
    yield inbox
    server.close()


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message).rstrip("\n")), level="INFO", format="{message}")
    yield lines
    logger.remove(sink)


def test_only_regular_files_arrive_and_each_other_kind_is_said_once(specials, log_lines):
    arrived: list[Path] = []
    scanner = InboxScanner(specials, on_arrival=lambda path, info: arrived.append(path),
                           extensions=VIDEO_EXTENSIONS, settle_seconds=0.0)
    for second in range(4):
        within(5, scanner.rescan, now=float(second))
        within(5, scanner.poll, now=float(second))
    scanner.note(specials / "y.mp4", now=5.0)                    # an event for the FIFO
    within(5, scanner.poll, now=5.0)
    assert arrived == [specials / "a.mp4"]
    ignored = [line for line in log_lines if "not a regular file" in line]
    assert sorted(ignored) == sorted([
        f"{specials / 'y.mp4'}: ignored: it is a FIFO (named pipe), not a regular file",
        f"{specials / 's.mkv'}: ignored: it is a socket, not a regular file",
        f"{specials / 'n.mov'}: ignored: it is a character device, not a regular file",
    ])                                                            # the folder d.avi is just a folder


def test_a_fifo_in_place_of_a_settled_file_never_blocks(specials):
    fifo = specials / "y.mp4"
    assert within(5, can_open, fifo) is False
    for read in (Fingerprint.of, read_content):
        with pytest.raises(NotRegularFile, match="FIFO"):
            within(5, read, fifo)
    with pytest.raises(NotRegularFile, match="character device"):
        within(5, open_regular, specials / "n.mov")
    with open_regular(specials / "a.mp4") as handle:
        assert handle.read() == b"v" * 1000
    with pytest.raises(MediaError, match=r"y\.mp4: is a FIFO \(named pipe\), not a regular file"):
        within(10, probe, fifo, ffmpeg=find_ffmpeg())
