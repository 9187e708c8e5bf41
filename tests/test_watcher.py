"""The inbox watcher: settle logic with a fake file system and clock, then real folders and events."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from midframe.config import VIDEO_EXTENSIONS
from midframe.daemon.watcher import InboxScanner, InboxWatcher
from midframe.fs.incoming import is_partial_name, is_video_name

INBOX = Path("/inbox")


class FakeFS:
    """Files as {path: (size, mtime_ns)}; folders are implied by the paths."""

    def __init__(self) -> None:
        self.files: dict[Path, tuple[int, int]] = {}
        self.locked: set[Path] = set()
        self.open_for_writing: set[Path] = set()

    def write(self, path: Path, size: int, mtime_ns: int = 1) -> None:
        self.files[Path(path)] = (size, mtime_ns)

    def stat(self, path: Path) -> SimpleNamespace:
        try:
            size, mtime_ns = self.files[Path(path)]
        except KeyError:
            raise FileNotFoundError(path) from None
        return SimpleNamespace(st_size=size, st_mtime_ns=mtime_ns, st_mtime=mtime_ns / 1e9,
                               st_mode=stat.S_IFREG | 0o644)

    def scandir(self, folder: Path):
        folder = Path(folder)
        names: dict[str, bool] = {}
        for path in self.files:
            if path.parent == folder:
                names[path.name] = False
            elif path.is_relative_to(folder):
                names[path.relative_to(folder).parts[0]] = True
        for name, is_dir in names.items():
            yield SimpleNamespace(name=name, path=str(folder / name),
                                  is_dir=lambda follow_symlinks=True, d=is_dir: d,
                                  is_file=lambda d=is_dir: not d)

    def opens(self, path: Path) -> bool:
        return Path(path) not in self.locked

    def writing(self, path: Path) -> bool:
        return Path(path) in self.open_for_writing


def make_scanner(fs: FakeFS, *, settle: float = 5.0, recursive: bool = False, excluded=()):
    arrived: list[Path] = []
    scanner = InboxScanner(INBOX, on_arrival=lambda path, info: arrived.append(path), extensions=VIDEO_EXTENSIONS,
                           settle_seconds=settle, recursive=recursive, excluded=excluded,
                           stat=fs.stat, scandir=fs.scandir, opens=fs.opens, writing=fs.writing)
    return scanner, arrived


@pytest.mark.parametrize("name", ["clip.part", "clip.mp4.part", "clip.mp4.crdownload", "x.tmp", "~$clip.mp4",
                                  ".syncthing.clip.mp4.tmp", ".hidden.mp4", "notes.txt", "noext"])
def test_partial_and_foreign_names_are_ignored(name):
    assert not is_video_name(name, VIDEO_EXTENSIONS)


@pytest.mark.parametrize("name", ["clip.mp4", "CLIP.MKV", "a b.mov", "x.m2ts", "y.webm"])
def test_video_names_count(name):
    assert is_video_name(name, VIDEO_EXTENSIONS) and not is_partial_name(name)


def test_a_file_arrives_only_after_it_stops_changing_for_the_settle_time():
    fs = FakeFS()
    scanner, arrived = make_scanner(fs, settle=5.0)
    fs.write(INBOX / "a.mp4", 100, mtime_ns=1)
    scanner.note(INBOX / "a.mp4", now=0.0)
    assert scanner.poll(now=4.0) == []
    fs.write(INBOX / "a.mp4", 200, mtime_ns=2)          # still growing
    assert scanner.poll(now=4.5) == []
    assert scanner.poll(now=9.0) == []                  # 4.5 s since the last change
    assert scanner.poll(now=9.6) == [INBOX / "a.mp4"]
    assert arrived == [INBOX / "a.mp4"]
    assert scanner.poll(now=20.0) == [] and scanner.pending == 0


def test_a_same_size_rewrite_is_seen_by_its_mtime():
    fs = FakeFS()
    scanner, arrived = make_scanner(fs, settle=1.0)
    fs.write(INBOX / "a.mp4", 100, mtime_ns=1)
    scanner.note(INBOX / "a.mp4", now=0.0)
    fs.write(INBOX / "a.mp4", 100, mtime_ns=2)
    assert scanner.poll(now=1.5) == []
    assert scanner.poll(now=2.6) == [INBOX / "a.mp4"]


def test_a_file_that_does_not_open_waits():
    fs = FakeFS()
    scanner, _ = make_scanner(fs, settle=1.0)
    fs.write(INBOX / "a.mp4", 100)
    fs.locked.add(INBOX / "a.mp4")
    scanner.note(INBOX / "a.mp4", now=0.0)
    assert scanner.poll(now=5.0) == []
    fs.locked.clear()
    assert scanner.poll(now=5.1) == [INBOX / "a.mp4"]


def test_a_file_held_open_for_writing_waits_however_long_it_stalls():
    fs = FakeFS()
    scanner, _ = make_scanner(fs, settle=1.0)
    fs.write(INBOX / "a.mp4", 100)
    fs.open_for_writing.add(INBOX / "a.mp4")
    scanner.note(INBOX / "a.mp4", now=0.0)
    assert all(scanner.poll(now=t) == [] for t in (1.5, 10.0, 100.0))   # a writer that stalls
    fs.open_for_writing.clear()
    assert scanner.poll(now=100.5) == []                                 # looked at again within a second
    assert scanner.poll(now=101.1) == [INBOX / "a.mp4"]


def test_resettle_waits_for_quiet_unless_the_file_changes():
    fs = FakeFS()
    scanner, arrived = make_scanner(fs, settle=1.0)
    fs.write(INBOX / "a.mp4", 100)
    scanner.note(INBOX / "a.mp4", now=0.0)
    assert scanner.poll(now=1.5) == [INBOX / "a.mp4"]
    scanner.resettle(INBOX / "a.mp4", now=2.0, quiet_s=30.0)            # the worker: it looks cut short
    assert scanner.poll(now=10.0) == [] and scanner.pending == 1
    assert scanner.poll(now=32.0) == [INBOX / "a.mp4"]                   # unchanged for 30 s: handed on again
    scanner.resettle(INBOX / "a.mp4", now=40.0, quiet_s=30.0)
    fs.write(INBOX / "a.mp4", 300, mtime_ns=2)                          # the copy went on after all
    assert scanner.poll(now=41.0) == []
    assert scanner.poll(now=42.1) == [INBOX / "a.mp4"]                   # the normal settle time applies
    assert arrived == [INBOX / "a.mp4"] * 3


def test_a_vanished_candidate_is_dropped():
    fs = FakeFS()
    scanner, _ = make_scanner(fs, settle=1.0)
    fs.write(INBOX / "a.mp4", 100)
    scanner.note(INBOX / "a.mp4", now=0.0)
    del fs.files[INBOX / "a.mp4"]
    assert scanner.poll(now=5.0) == [] and scanner.pending == 0


def test_rescan_finds_files_present_at_start_up_in_arrival_order_and_not_twice():
    fs = FakeFS()
    for name in ("b.mp4", "a.mkv", "c.txt", "d.mp4.part", ".e.mp4"):
        fs.write(INBOX / name, 10)
    fs.write(INBOX / "sub" / "f.mp4", 10)
    scanner, arrived = make_scanner(fs, settle=1.0)
    assert scanner.rescan(now=0.0) == 2
    fs.write(INBOX / "z.mp4", 10)
    scanner.note(INBOX / "z.mp4", now=0.5)
    assert scanner.poll(now=1.0) == [INBOX / "a.mkv", INBOX / "b.mp4"]
    assert scanner.poll(now=1.5) == [INBOX / "z.mp4"]
    scanner.rescan(now=2.0)                              # nothing changed: nothing to settle again
    assert scanner.pending == 0 and scanner.poll(now=10.0) == []
    fs.write(INBOX / "a.mkv", 11, mtime_ns=5)           # replaced: a new arrival
    scanner.rescan(now=11.0)
    assert scanner.poll(now=12.0) == [INBOX / "a.mkv"]
    assert arrived.count(INBOX / "a.mkv") == 2


def test_a_burst_is_queued_in_name_order_and_later_files_after_it():
    fs = FakeFS()
    scanner, _ = make_scanner(fs, settle=1.0)
    for offset, name in enumerate(["c.mp4", "a.mp4", "b.mp4"]):    # a polling batch: any order
        fs.write(INBOX / name, 10)
        scanner.note(INBOX / name, now=10.0 + offset * 0.01)
    fs.write(INBOX / "0-later.mp4", 10)
    scanner.note(INBOX / "0-later.mp4", now=12.0)
    assert [p.name for p in scanner.poll(now=20.0)] == ["a.mp4", "b.mp4", "c.mp4", "0-later.mp4"]


def test_recursive_walks_sub_folders_but_never_done_failed_or_outbox():
    fs = FakeFS()
    for rel in ("top.mp4", "shows/s01.mkv", "shows/deep/s02.mkv", "done/old.mp4", "failed/bad.mkv",
                "out/x.mp4", ".hidden/y.mp4", "shows/.midframe-work/job-1.mkv"):
        fs.write(INBOX / rel, 10)
    excluded = (INBOX / "done", INBOX / "failed", INBOX / "out", Path("/elsewhere"))
    scanner, arrived = make_scanner(fs, settle=0.0, recursive=True, excluded=excluded)
    scanner.rescan(now=0.0)
    scanner.poll(now=0.0)
    assert sorted(p.relative_to(INBOX).as_posix() for p in arrived) == [
        "shows/deep/s02.mkv", "shows/s01.mkv", "top.mp4"]
    scanner.note(INBOX / "done" / "new.mp4", now=1.0)
    assert scanner.pending == 0
    flat, flat_arrived = make_scanner(fs, settle=0.0, recursive=False)
    flat.rescan(now=0.0)
    flat.poll(now=0.0)
    assert flat_arrived == [INBOX / "top.mp4"]


def test_an_inbox_inside_the_done_folder_is_still_watched():
    fs = FakeFS()
    fs.write(INBOX / "a.mp4", 1)
    scanner, arrived = make_scanner(fs, settle=0.0, excluded=(Path("/"),))
    scanner.rescan(now=0.0)
    scanner.poll(now=0.0)
    assert arrived == [INBOX / "a.mp4"]


# --- real folders, real watchdog events ------------------------------------------------------------


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Collected:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[Path, int, float]] = []

    def __call__(self, path: Path, info: os.stat_result) -> None:
        with self.lock:
            self.items.append((path, info.st_size, time.monotonic()))

    def names(self) -> list[str]:
        with self.lock:
            return [path.name for path, _, _ in self.items]


@pytest.fixture(params=[False, True], ids=["events", "polling"])
def real_watcher(request, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "done").mkdir()
    (inbox / "already.mp4").write_bytes(b"x" * 1000)
    collected = Collected()
    scanner = InboxScanner(inbox, on_arrival=collected, extensions=VIDEO_EXTENSIONS, settle_seconds=0.5,
                           recursive=True, excluded=(inbox / "done",))
    # A long rescan interval: arrivals below must come from events (or the polling observer).
    watcher = InboxWatcher(scanner, polling=request.param, rescan_seconds=3600, tick_seconds=0.05)
    watcher.start()
    yield inbox, collected
    watcher.stop()


def test_real_folder_arrivals(real_watcher, tmp_path):
    inbox, collected = real_watcher
    assert wait_for(lambda: "already.mp4" in collected.names(), timeout=5)

    outside = tmp_path / "outside.mkv"
    outside.write_bytes(b"m" * 5000)
    os.replace(outside, inbox / "moved.mkv")                      # moved in
    (inbox / "film.mp4.part").write_bytes(b"p" * 3000)            # a download...
    (inbox / "ignored.txt").write_text("not a video")
    (inbox / "done" / "old.mp4").write_bytes(b"o")                 # never watched
    (inbox / "sub").mkdir()
    (inbox / "sub" / "nested.mov").write_bytes(b"n" * 10)

    started = time.monotonic()
    with open(inbox / "slow.mp4", "wb") as handle:                # copied in slowly
        for _ in range(6):
            handle.write(b"s" * 4096)
            handle.flush()
            last_write = time.monotonic()
            time.sleep(0.3)
    os.replace(inbox / "film.mp4.part", inbox / "film.mp4")       # ...renamed at the end

    assert wait_for(lambda: {"moved.mkv", "slow.mp4", "film.mp4", "nested.mov"} <= set(collected.names()))
    time.sleep(0.6)
    names = collected.names()
    assert sorted(names) == ["already.mp4", "film.mp4", "moved.mkv", "nested.mov", "slow.mp4"]
    slow = next(item for item in collected.items if item[0].name == "slow.mp4")
    assert slow[1] == 6 * 4096                                     # handed on whole, once
    assert slow[2] >= last_write + 0.45 > started
    shutil.rmtree(inbox / "sub")


def test_an_arrival_that_could_not_be_queued_is_tried_again():
    fs = FakeFS()
    fs.write(INBOX / "a.mp4", 10)
    calls: list[Path] = []

    def flaky(path, info):
        calls.append(path)
        if len(calls) == 1:
            raise OSError("database is locked")

    scanner = InboxScanner(INBOX, on_arrival=flaky, extensions=VIDEO_EXTENSIONS, settle_seconds=0.0,
                           stat=fs.stat, scandir=fs.scandir, opens=fs.opens, writing=fs.writing)
    scanner.rescan(now=0.0)
    assert scanner.poll(now=0.0) == []
    scanner.rescan(now=1.0)
    assert scanner.poll(now=1.0) == [INBOX / "a.mp4"] and len(calls) == 2
