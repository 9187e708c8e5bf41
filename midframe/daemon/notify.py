"""Notifications: an event queue the tray polls, desktop bubbles over D-Bus, or just the log.

Every notification becomes an event (``GET /events``). While a tray has polled in the last
``TRAY_TTL_S`` seconds it shows them, so nothing else is sent; otherwise a desktop notification goes
to ``org.freedesktop.Notifications`` on the session bus where there is one, else it is only logged.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from loguru import logger

from midframe.engine.job import Progress
from midframe.log import escape

TRAY_TTL_S = 15.0
KINDS = ("started", "progress", "done", "failed", "paused", "resumed", "warning")


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    title: str
    body: str
    job_id: int | None
    time: float


class EventLog:
    """The last ``capacity`` events, numbered. Numbers start at the wall clock in milliseconds, so a
    client that remembers ``last`` across a daemon restart still sees the new daemon's events."""

    def __init__(self, *, capacity: int = 500, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._clock = clock
        self._last = int(clock() * 1000)
        self._tray_seen: float | None = None

    def append(self, kind: str, title: str, body: str = "", *, job_id: int | None = None) -> Event:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with self._lock:
            self._last += 1
            event = Event(self._last, kind, title, body, job_id, self._clock())
            self._events.append(event)
        return event

    def since(self, after: int = 0, *, client: str = "cli") -> dict[str, Any]:
        with self._lock:
            if client == "tray":
                self._tray_seen = self._clock()
            events = [asdict(e) for e in self._events if e.seq > after]
            return {"events": events, "last": self._last}

    def tray_attached(self) -> bool:
        with self._lock:
            return self._tray_seen is not None and self._clock() - self._tray_seen < TRAY_TTL_S


class DesktopNotifier:
    """Desktop bubbles through ``gdbus`` (or ``notify-send``), sent from a thread of its own so a slow
    or absent notification server never holds up a job. Each job's bubble is replaced, not stacked."""

    def __init__(self, command: str, *, timeout_s: float = 5.0) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue(maxsize=100)
        self._ids: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def detect(cls, environ: dict[str, str] | None = None) -> DesktopNotifier | None:
        """A notifier when a session bus and a client for it exist, else None."""
        environ = dict(os.environ if environ is None else environ)
        if not environ.get("DBUS_SESSION_BUS_ADDRESS"):
            return None
        for name in ("gdbus", "notify-send"):
            found = shutil.which(name)
            if found:
                return cls(found)
        return None

    def send(self, key: str, title: str, body: str) -> None:
        """Queue a bubble; ``key`` (e.g. ``job-3``) groups bubbles that replace each other."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="midframe-notify")
                self._thread.start()
        try:
            self._queue.put_nowait((key, title, body))
        except queue.Full:
            logger.debug("desktop notifications are backed up; dropping {!r}", title)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=self.timeout_s + 1)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            key, title, body = item
            self._ids[key] = self._notify(title, body, self._ids.get(key, 0))

    def _notify(self, title: str, body: str, replaces: int) -> int:
        if os.path.basename(self.command).startswith("gdbus"):
            cmd = [self.command, "call", "--session", "--dest", "org.freedesktop.Notifications",
                   "--object-path", "/org/freedesktop/Notifications",
                   "--method", "org.freedesktop.Notifications.Notify",
                   "midframe", str(replaces), "video-x-generic", title, body, "[]", "{}", "8000"]
        else:
            cmd = [self.command, "--app-name=midframe", "--print-id", title, body]
            if replaces:
                cmd.insert(-2, f"--replace-id={replaces}")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            done = None
            reason = str(exc)
        else:
            reason = done.stderr.strip()
        if done is None or done.returncode != 0:
            if not self._failed:
                logger.info("desktop notifications unavailable ({}); logging only", reason or "no server")
            self._failed = True
            return 0
        self._failed = False
        found = re.search(r"(\d+)", done.stdout)
        return int(found.group(1)) if found else 0


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Notifier:
    """What the worker calls. Always records an event; then tray, desktop or log only."""

    def __init__(
        self,
        events: EventLog,
        *,
        desktop: DesktopNotifier | None = None,
        enabled: Callable[[], bool] = lambda: True,
        progress_interval: Callable[[], float] = lambda: 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.desktop = desktop
        self._enabled = enabled
        self._interval = progress_interval
        self._clock = clock
        self._last_progress: dict[int, float] = {}

    def _emit(self, kind: str, title: str, body: str = "", *, job_id: int | None = None) -> Event:
        # File names in notifications are escaped like those in log lines (one line, always encodable).
        event = self.events.append(kind, escape(title), escape(body), job_id=job_id)
        if not self._enabled():
            return event
        if self.desktop is not None and not self.events.tray_attached():
            self.desktop.send(f"job-{job_id}" if job_id is not None else kind, event.title, event.body)
        return event

    def started(self, job_id: int, name: str, *, resumed_at: float | None = None) -> None:
        self._last_progress[job_id] = self._clock()
        body = f"resuming at {resumed_at * 100:.0f}%" if resumed_at else "converting"
        self._emit("started", f"midframe: {name}", body, job_id=job_id)

    def progress(self, job_id: int, name: str, progress: Progress, *, force: bool = False) -> bool:
        """A progress bubble at most every ``progress_interval_s``; returns whether one was sent."""
        now = self._clock()
        if not force and now - self._last_progress.get(job_id, float("-inf")) < self._interval():
            return False
        self._last_progress[job_id] = now
        body = f"{progress.fraction * 100:.0f}%, ETA {format_duration(progress.eta_s)} ({progress.fps:.1f} fps)"
        self._emit("progress", f"midframe: {name}", body, job_id=job_id)
        return True

    def done(self, job_id: int, name: str, output_name: str, seconds: float) -> None:
        self._last_progress.pop(job_id, None)
        self._emit("done", f"midframe: {name} done", f"{output_name} in {format_duration(seconds)}", job_id=job_id)

    def failed(self, job_id: int, name: str, reason: str) -> None:
        self._last_progress.pop(job_id, None)
        self._emit("failed", f"midframe: {name} failed", reason, job_id=job_id)

    def paused(self, reason: str) -> None:
        self._emit("paused", "midframe paused", reason)

    def resumed(self) -> None:
        self._emit("resumed", "midframe resumed", "")

    def warning(self, text: str) -> None:
        self._emit("warning", "midframe", text)

    def close(self) -> None:
        if self.desktop is not None:
            self.desktop.close()
