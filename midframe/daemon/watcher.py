"""Which files have arrived in the inbox: watchdog events and periodic rescans feed a settle check.

A copy fires ``created`` when it starts, and only Linux reports when it closes, so a file counts as
arrived once its size and mtime have not changed for ``settle_seconds``, it opens for reading, and no
process holds it open for writing (where the OS tells: Linux). The worker sends a file that turned out
to be still arriving back here (``resettle``), to be handed on again once it has been quiet long enough.
:class:`InboxScanner` is that logic with the file-system calls and the clock passed in, run one
iteration at a time (``poll(now=...)``); :class:`InboxWatcher` drives it from a thread and a watchdog
observer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from midframe.errors import StoreUnwritable
from midframe.fs.incoming import is_partial_name, is_video_name, open_for_writing
from midframe.loop_thread import LoopThread
from midframe.regular import kind_of, open_regular

Arrival = Callable[[Path, os.stat_result], None]
Clock = Callable[[], float]


def can_open(path: Path) -> bool:
    """Whether the file opens for reading (on Windows a file still being copied does not); never
    blocks, and a FIFO or device put in its place does not count."""
    try:
        with open_regular(path) as handle:
            handle.read(1)
    except OSError:
        return False
    return True


WRITER_RECHECK_S = 1.0  # a file held open for writing is looked at again after this long


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    first_seen: float
    stable_since: float
    hold_until: float = float("-inf")  # not handed on before this, unless it changes meanwhile
    writer_logged: bool = False


class InboxScanner:
    """The settle logic. Thread-safe; no threads of its own; time comes in as ``now``."""

    def __init__(
        self,
        inbox: Path,
        *,
        on_arrival: Arrival,
        extensions: Iterable[str],
        settle_seconds: float,
        recursive: bool = False,
        subfolders: Iterable[str] = (),
        excluded: Iterable[Path] = (),
        stat: Callable[[Path], os.stat_result] = os.stat,
        scandir: Callable[[Path], Iterator[os.DirEntry[str]]] = os.scandir,
        opens: Callable[[Path], bool] = can_open,
        writing: Callable[[Path], bool] = open_for_writing,
        order_window_s: float = 1.0,
    ) -> None:
        self.inbox = Path(inbox)
        self.recursive = recursive
        # Folders of the inbox watched even when it is not recursive (the profiles' folders).
        self.subfolders = frozenset(subfolders)
        self.settle_seconds = settle_seconds
        self.order_window_s = order_window_s
        self._on_arrival = on_arrival
        self._extensions = frozenset(ext.lower().lstrip(".") for ext in extensions)
        # Only folders inside the inbox need skipping (an inbox inside done_dir must still be watched).
        self._excluded = tuple(
            Path(p) for p in excluded if Path(p) != self.inbox and Path(p).is_relative_to(self.inbox)
        )
        self._stat = stat
        self._scandir = scandir
        self._opens = opens
        self._writing = writing
        self._lock = threading.Lock()
        self._candidates: dict[Path, _Candidate] = {}
        # (size, mtime_ns) of each file already handed on, so a rescan does not settle it again.
        self._handed: dict[Path, tuple[int, int]] = {}
        # FIFOs, sockets, devices with a video's name: said once, then ignored while they stay.
        self._not_regular: set[Path] = set()

    @property
    def recursive_anywhere(self) -> bool:
        """Whether events below the inbox's top level matter (sub-folders or profile folders)."""
        return self.recursive or bool(self.subfolders)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._candidates)

    def _folder_wanted(self, folder: Path) -> bool:
        try:
            relative = folder.relative_to(self.inbox)
        except ValueError:
            return False
        if relative.parts and not self.recursive and (len(relative.parts) > 1 or relative.parts[0] not in self.subfolders):
            return False  # not recursive: only the profiles' folders themselves, not what is below them
        if any(is_partial_name(part) for part in relative.parts):
            return False
        return not any(folder.is_relative_to(excluded) for excluded in self._excluded)

    def wanted(self, path: Path) -> bool:
        """Whether ``path`` could be a video arriving in the inbox (by name and place only)."""
        return self._folder_wanted(path.parent) and is_video_name(path.name, self._extensions)

    def note(self, path: Path, *, now: float) -> None:
        """An event says ``path`` may be new or growing."""
        path = Path(path)
        if not self.wanted(path):
            return
        try:
            info = self._stat(path)
        except OSError:
            return
        if not self._regular(path, info):
            return
        identity = (info.st_size, info.st_mtime_ns)
        with self._lock:
            if path in self._candidates or self._handed.get(path) == identity:
                return
            self._candidates[path] = _Candidate(info.st_size, info.st_mtime_ns, now, now)

    def note_folder(self, folder: Path, *, now: float) -> None:
        """A folder appeared (moved in whole): note everything in it."""
        for path in self._walk(Path(folder)):
            self.note(path, now=now)

    def rescan(self, *, now: float) -> int:
        """Walk the inbox and note every candidate; returns how many files it saw."""
        seen = list(self._walk(self.inbox))
        with self._lock:
            present = set(seen)
            for gone in [p for p in self._handed if p not in present]:
                del self._handed[gone]
            self._not_regular &= present
        for path in seen:
            self.note(path, now=now)
        return len(seen)

    def _walk(self, folder: Path) -> Iterator[Path]:
        try:
            entries = list(self._scandir(folder))
        except OSError as exc:
            logger.warning("cannot list {}: {}", folder, exc.strerror or exc)
            return
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if self._folder_wanted(path):
                        yield from self._walk(path)
                elif self.wanted(path):  # FIFOs and the like too: note() says once that they are ignored
                    yield path
            except OSError:
                continue

    def poll(self, *, now: float) -> list[Path]:
        """One iteration: hand on every candidate that has settled; returns them in arrival order."""
        settled: list[tuple[Path, os.stat_result]] = []
        with self._lock:
            candidates = sorted(self._candidates.items(), key=self._arrival_order)
        for path, candidate in candidates:
            try:
                info = self._stat(path)
            except OSError:
                self._forget(path)
                continue
            if not self._regular(path, info):
                self._forget(path)
                continue
            if (info.st_size, info.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                with self._lock:
                    candidate.size, candidate.mtime_ns, candidate.stable_since = info.st_size, info.st_mtime_ns, now
                    candidate.hold_until = float("-inf")
                continue
            if now - candidate.stable_since < self.settle_seconds or now < candidate.hold_until:
                continue
            if not self._opens(path):
                continue
            if self._writing(path):
                if not candidate.writer_logged:
                    logger.info("{}: another program still has it open for writing; waiting", path)
                    candidate.writer_logged = True
                candidate.hold_until = now + WRITER_RECHECK_S
                continue
            with self._lock:
                self._candidates.pop(path, None)
                self._handed[path] = (info.st_size, info.st_mtime_ns)
            settled.append((path, info))
        handed = []
        for path, info in settled:
            try:
                self._on_arrival(path, info)
            except Exception as exc:
                if isinstance(exc, StoreUnwritable):  # the worker's pause says why; no traceback per file
                    logger.warning("{}: could not queue it ({}); trying again at the next rescan", path, exc)
                else:
                    logger.exception("{}: could not queue it; trying again at the next rescan", path)
                with self._lock:
                    self._handed.pop(path, None)
                continue
            handed.append(path)
        return handed

    def _arrival_order(self, item: tuple[Path, _Candidate]) -> tuple[int, str]:
        """First seen, with files that came within the same ``order_window_s`` (a burst, a polling
        observer's batch, a folder at start-up) in name order."""
        path, candidate = item
        return (int(candidate.first_seen // self.order_window_s), str(path))

    def resettle(self, path: Path, *, now: float, quiet_s: float = 0.0) -> None:
        """Settle ``path`` again (the worker found it still arriving): hand it on once it has stood
        unchanged for ``settle_seconds`` and, if it does not change at all, ``quiet_s`` from now."""
        path = Path(path)
        try:
            info = self._stat(path)
        except OSError:
            return
        with self._lock:
            self._handed.pop(path, None)
            self._candidates[path] = _Candidate(info.st_size, info.st_mtime_ns, now, now, hold_until=now + quiet_s)

    def _regular(self, path: Path, info: os.stat_result) -> bool:
        """Whether ``path`` is a regular file; the first time it is not, one log line says so."""
        kind = kind_of(info.st_mode)
        with self._lock:
            if kind is None:
                self._not_regular.discard(path)
                return True
            first = path not in self._not_regular
            self._not_regular.add(path)
        if first:
            logger.warning("{}: ignored: it is {}, not a regular file", path, kind)
        return False

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._candidates.pop(path, None)


class _EventHandler(FileSystemEventHandler):
    def __init__(self, scanner: InboxScanner, clock: Clock) -> None:
        self._scanner = scanner
        self._clock = clock

    def _path(self, event: FileSystemEvent, attribute: str) -> Path:
        value = getattr(event, attribute)
        return Path(os.fsdecode(value))

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "moved", "modified", "closed"):
            return
        path = self._path(event, "dest_path" if event.event_type == "moved" else "src_path")
        if event.is_directory:
            if event.event_type in ("created", "moved") and self._scanner.recursive_anywhere:
                self._scanner.note_folder(path, now=self._clock())
        else:
            self._scanner.note(path, now=self._clock())


class InboxWatcher:
    """Runs an :class:`InboxScanner`: a watchdog observer for events, a thread for settle and rescans."""

    def __init__(
        self,
        scanner: InboxScanner,
        *,
        polling: bool = False,
        rescan_seconds: float = 60.0,
        tick_seconds: float = 0.25,
        clock: Clock = time.monotonic,
    ) -> None:
        self.scanner = scanner
        self.polling = polling
        self.rescan_seconds = rescan_seconds
        self.tick_seconds = tick_seconds
        self._clock = clock
        self._observer: BaseObserver | None = None
        self._next_rescan = float("-inf")
        self._thread = LoopThread(name="midframe-watcher", period_s=tick_seconds, iterate=self.iterate,
                                  daemon=False, clock=clock)

    def should_keep_running(self) -> bool:
        return self._thread.should_keep_running()

    def start(self) -> None:
        self.scanner.inbox.mkdir(parents=True, exist_ok=True)
        self._observer = self._start_observer()
        self._thread.start()

    def _start_observer(self) -> BaseObserver:
        handler = _EventHandler(self.scanner, self._clock)
        kinds = [PollingObserver] if self.polling else [Observer, PollingObserver]
        for kind in kinds:
            observer = kind()
            try:
                observer.schedule(handler, str(self.scanner.inbox), recursive=self.scanner.recursive_anywhere)
                observer.start()
            except OSError as exc:
                logger.warning("cannot watch {} with {}: {}; polling instead", self.scanner.inbox, kind.__name__, exc)
                continue
            logger.info("watching {} ({})", self.scanner.inbox, "polling" if kind is PollingObserver else "events")
            return observer
        raise OSError(f"cannot watch {self.scanner.inbox}")

    def iterate(self, now: float) -> None:
        """One round of the settle loop: a rescan when one is due, then the files that settled."""
        if now >= self._next_rescan:
            self.scanner.rescan(now=now)
            self._next_rescan = now + self.rescan_seconds
        self.scanner.poll(now=now)

    def resettle(self, path: Path, quiet_s: float = 0.0) -> None:
        """The worker found ``path`` still arriving: settle it again (see ``InboxScanner.resettle``)."""
        self.scanner.resettle(path, now=self._clock(), quiet_s=quiet_s)

    def stop(self) -> None:
        self._thread.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
