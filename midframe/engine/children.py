"""The progress deadline of every ffmpeg child (decoder, encoder, muxer, probe), and stopping them all.

A child is judged only while midframe waits on it: blocked reading a frame from the decoder, writing
one to the encoder, or waiting for a one-shot command (probe, packet scan, join) to end. A decoder
left unread while the model works on a slow batch is not waited on, so it is never judged. While a
wait lasts, anything the child does counts as progress: bytes through its pipe, a line on its stderr,
CPU time or I/O operations the OS counts for it (``psutil``). A wait with none of these for
``stall_s`` means the child is stuck (stopped by a signal, blocked on a network share that no longer
answers): its whole process group is killed, and whoever waited raises :class:`ChildFailed` with
``stalled=True`` (a passing failure: the job is retried and resumes from its checkpoint).

``stop`` (the job was stopped or cancelled) gives its children ``stop_grace_s`` in all (an encoder
closing its segment cleanly keeps what it made), and ``STOP_IDLE_S`` without progress: a child
midframe still waits on past either is killed, so a stop never waits on children for longer than
that; what waited raises ``Aborted``. The judgment itself is :func:`verdict`, pure; :class:`Children` samples and kills on
one thread of its own, alive only while it has children.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from midframe.errors import Aborted, ChildFailed

DEFAULT_STALL_S = 120.0  # daemon.child_stall_seconds's default
STOP_GRACE_S = 10.0  # a stopped job's children get this long, then they are killed
STOP_IDLE_S = 2.0  # ... or this long without progress
POLL_S = 0.5
# A wait this long without progress shows in `status` (a fraction of the deadline, at most 15 s).
NOTICE_FRACTION = 0.25
NOTICE_MAX_S = 15.0

Verdict = Literal["stalled", "stopped"]


@dataclass(frozen=True)
class Usage:
    """What the OS has counted for a child so far (None where it does not say)."""

    cpu_s: float | None
    io_ops: int | None


def os_usage(pid: int) -> Usage | None:
    """CPU seconds and I/O operations of process ``pid`` (I/O counts exist on Linux and Windows)."""
    import psutil

    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        cpu = times.user + times.system
        try:
            io = process.io_counters()
            ops = io.read_count + io.write_count
        except (AttributeError, psutil.AccessDenied, NotImplementedError):
            ops = None
        return Usage(cpu, ops)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def verdict(*, now: float, waiting_since: float | None, progress_at: float, stall_s: float,
            stopping_since: float | None, stop_grace_s: float, stop_idle_s: float = STOP_IDLE_S) -> Verdict | None:
    """Whether a child must be killed now: ``stopped`` when midframe waits on it ``stop_grace_s`` or more
    after its job stopped (progress or not), or ``stop_idle_s`` without progress since then; ``stalled``
    once a wait saw no progress for ``stall_s``."""
    if waiting_since is None:
        return None
    if stopping_since is not None and (now - stopping_since >= stop_grace_s or
                                       now - max(waiting_since, progress_at, stopping_since) >= stop_idle_s):
        return "stopped"
    if now - max(waiting_since, progress_at) >= stall_s:
        return "stalled"
    return None


def notice_after(stall_s: float) -> float:
    return min(NOTICE_MAX_S, stall_s * NOTICE_FRACTION)


class Child:
    """One tracked child: its waits and its progress marks. Made by :meth:`Children.track`."""

    def __init__(self, name: str, pid: int, kill: Callable[[], None], clock: Callable[[], float]) -> None:
        self.name = name  # what it is to a person: "the decoder", "the encoder", "ffprobe"...
        self.pid = pid
        self._kill = kill
        self._clock = clock
        self._lock = threading.Lock()
        self._waits = 0
        self.waiting_since: float | None = None
        self.progress_at = clock()
        self._moved = 0
        self._seen_moved = 0
        self._usage: Usage | None = None
        self.killed: Verdict | None = None
        self.killed_after_s = 0.0

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a call that blocks on this child (a read, a write, a wait for its exit)."""
        with self._lock:
            if self._waits == 0:
                self.waiting_since = self._clock()
            self._waits += 1
        try:
            yield
        finally:
            with self._lock:
                self._waits -= 1
                if self._waits == 0:
                    self.waiting_since = None

    def moved(self, amount: int = 1) -> None:
        """Bytes or lines came from or went to the child (a plain counter: cheap on every read)."""
        self._moved += amount

    def sample(self, usage: Usage | None, now: float) -> None:
        """Note progress when anything moved since the last sample."""
        moved = self._moved
        changed = moved != self._seen_moved
        if usage is not None and self._usage is not None:
            changed = changed or (usage.cpu_s != self._usage.cpu_s) or (usage.io_ops != self._usage.io_ops)
        self._seen_moved = moved
        if usage is not None:
            self._usage = usage
        if changed:
            self.progress_at = now

    def idle_s(self, now: float) -> float:
        """How long the current wait has seen no progress (0 when midframe is not waiting)."""
        since = self.waiting_since
        return 0.0 if since is None else now - max(since, self.progress_at)

    def kill(self, why: Verdict, now: float) -> None:
        if self.killed is None:
            self.killed = why
            self.killed_after_s = self.idle_s(now) if why == "stalled" else now - (self.waiting_since or now)
        self._kill()


class Children:
    """The children of one job (or of one command run alone), their deadline and their stop."""

    def __init__(self, *, stall_s: float = DEFAULT_STALL_S, stop_grace_s: float = STOP_GRACE_S,
                 poll_s: float = POLL_S, usage: Callable[[int], Usage | None] = os_usage,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self.stop_grace_s = stop_grace_s
        self._poll_s = poll_s
        self._usage = usage
        self._clock = clock
        self._lock = threading.Lock()
        self._children: list[Child] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.stopping_since: float | None = None
        self.stop_reason = "stopped"

    def track(self, *, name: str, pid: int, kill: Callable[[], None]) -> Child:
        child = Child(name, pid, kill, self._clock)
        with self._lock:
            self._children.append(child)
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._watch, name="midframe-children", daemon=True)
                self._thread.start()
        return child

    def untrack(self, child: Child) -> None:
        with self._lock:
            if child in self._children:
                self._children.remove(child)
            thread = self._thread if not self._children else None
        if thread is not None and thread is not threading.current_thread():
            self._wake.set()
            thread.join(5)

    def stop(self, reason: str = "stopped") -> None:
        """The job was stopped: from now on no wait on a child lasts longer than ``stop_grace_s``."""
        self.stop_reason = reason
        if self.stopping_since is None:
            self.stopping_since = self._clock()

    def pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child in self._children]

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    def stalled(self) -> str | None:
        """A sentence for `status` while a child has made no progress for a while, else None."""
        now = self._clock()
        with self._lock:
            children = list(self._children)
        worst = max(children, key=lambda child: child.idle_s(now), default=None)
        if worst is None or worst.idle_s(now) < notice_after(self.stall_s):
            return None
        return (f"{worst.name} has made no progress for {worst.idle_s(now):.0f} s "
                f"(stopped at {self.stall_s:.0f} s and tried again)")

    def check(self) -> None:
        """One look at every child: sample the waited-on ones, kill those past their deadline."""
        now = self._clock()
        with self._lock:
            children = list(self._children)
        for child in children:
            if child.waiting_since is None or child.killed is not None:
                continue
            child.sample(self._usage(child.pid), now)
            why = verdict(now=now, waiting_since=child.waiting_since, progress_at=child.progress_at,
                          stall_s=self.stall_s, stopping_since=self.stopping_since, stop_grace_s=self.stop_grace_s)
            if why is not None:
                child.kill(why, now)

    def _watch(self) -> None:
        while True:
            with self._lock:
                if not self._children:
                    self._thread = None  # under the lock: a child tracked from now on starts a new one
                    return
            self.check()
            if self._wake.wait(self._poll_s):
                self._wake.clear()


def died_by_signal(returncode: int | None, platform: str = sys.platform) -> int | None:
    """The signal a child died by (POSIX: a negative return code), else None. Windows has no signals:
    a process ended from outside (Task Manager) exits with the code it was given, like any failure."""
    if returncode is None or platform == "win32":
        return None
    return -returncode if returncode < 0 else None


def crashed(returncode: int | None, platform: str = sys.platform) -> bool:
    """Ended by something other than its input: a signal on POSIX; on Windows an NTSTATUS exit code
    (0xC0000000 and up: an access violation, a stack overflow, STATUS_CONTROL_C_EXIT)."""
    if returncode is None:
        return False
    if platform == "win32":
        return (returncode & 0xFFFFFFFF) >= 0xC0000000
    return returncode < 0


def child_failure(child: Child, returncode: int | None, *, children: Children, title: str) -> Exception | None:
    """What ended a child, once it ended: ``Aborted`` (its job's stop), ``ChildFailed`` (its deadline, a
    signal, a crash), or None: its exit code and stderr say the rest."""
    if child.killed == "stopped":
        return Aborted(children.stop_reason)
    if child.killed == "stalled":
        return ChildFailed(f"{title} made no progress for {child.killed_after_s:.0f} s and was stopped",
                           command=title, stalled=True, stalled_s=child.killed_after_s)
    if crashed(returncode):
        number = died_by_signal(returncode)
        how = f"was killed by signal {number} ({_signal_name(number)})" if number else f"crashed (exit code {returncode:#x})"
        return ChildFailed(f"{title} {how}", command=title, signal=number)
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"
