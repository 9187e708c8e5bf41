"""Notifications: an event queue the tray polls, desktop bubbles over D-Bus, or just the log.

Every notification becomes an event (``GET /events``), and each is shown once, by one of two:
- a tray that polls (``events(after, client="tray")``): what it fetches it shows, and the daemon
  counts it as taken;
- the daemon itself, on the desktop's notification server (``DesktopNotifier``), when no tray has
  polled in the last ``TRAY_TTL_S`` seconds, or when one has but did not take the event within
  ``TRAY_GRACE_S`` (it quit, hung or crashed since). An event the daemon showed is marked ``shown``
  so that a tray attaching later does not show it again.
Without a notification server it is only logged.

On the desktop, news stays: a "done" or "failed" bubble is never closed or replaced by a later one
(the next job's "converting" and progress bubbles replace only each other), and a "failed" bubble is
critical, without a time-out, so it stays until it is clicked away. Other sinks (Apprise URLs,
after-job commands: :mod:`midframe.daemon.sinks`) subscribe to the events (``Notifier.subscribe``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from loguru import logger

from midframe.desktop_bubbles import DesktopNotifier
from midframe.engine.job import Progress
from midframe.log import escape
from midframe.sentences import format_duration

TRAY_TTL_S = 15.0  # a tray that polled this recently is left to show new events
TRAY_GRACE_S = 4.0  # ... if it takes them this soon (it polls every second)
KINDS = ("started", "progress", "done", "failed", "paused", "resumed", "stalled", "warning")


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
        self._taken = 0  # the tray has fetched every event up to this number
        self._shown: set[int] = set()  # events the daemon showed itself

    def append(self, kind: str, title: str, body: str = "", *, job_id: int | None = None) -> Event:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with self._lock:
            self._last += 1
            event = Event(self._last, kind, title, body, job_id, self._clock())
            self._events.append(event)
            self._shown.intersection_update(e.seq for e in self._events)
        return event

    def since(self, after: int = 0, *, client: str = "cli") -> dict[str, Any]:
        with self._lock:
            events = [{**asdict(e), "shown": e.seq in self._shown} for e in self._events if e.seq > after]
            if client == "tray":
                self._tray_seen = self._clock()
                self._taken = max(self._taken, self._last)
            return {"events": events, "last": self._last}

    def tray_attached(self) -> bool:
        with self._lock:
            return self._tray_seen is not None and self._clock() - self._tray_seen < TRAY_TTL_S

    def silence(self, seq: int) -> None:
        """Mark event ``seq`` as not to be shown by anyone (notifications are off)."""
        with self._lock:
            self._shown.add(seq)

    def claim_for_desktop(self, seq: int) -> bool:
        """True if the tray has not fetched event ``seq``; it is then marked shown (by the daemon)."""
        with self._lock:
            if seq <= self._taken:
                return False
            self._shown.add(seq)
            return True


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
        self._listeners: list[Callable[[Event], None]] = []

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event from now on, on the thread that emits it (the worker's):
        it must only hand the event on (``midframe.daemon.sinks.QueuedSink``), never wait."""
        self._listeners.append(listener)

    def _emit(self, kind: str, title: str, body: str = "", *, job_id: int | None = None) -> Event:
        # File names in notifications are escaped like those in log lines (one line, always encodable).
        event = self.events.append(kind, escape(title), escape(body), job_id=job_id)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a sink's fault must not end the job that emitted the event
                logger.exception("a subscriber of the job events failed on {!r}", event.title)
        if not self._enabled():
            self.events.silence(event.seq)
            return event
        if self.desktop is None:
            return event
        wait = TRAY_GRACE_S if self.events.tray_attached() else 0.0
        self.desktop.send(event.title, event.body, kind=event.kind, after_s=wait,
                          still_wanted=lambda: self.events.claim_for_desktop(event.seq))
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

    def stalled(self, job_id: int, name: str, sentence: str) -> None:
        self._emit("stalled", f"midframe: {name} stalled", sentence, job_id=job_id)

    def resumed(self) -> None:
        self._emit("resumed", "midframe resumed", "")

    def warning(self, text: str) -> None:
        self._emit("warning", "midframe", text)

    def close(self) -> None:
        if self.desktop is not None:
            self.desktop.close()
