"""The job events and the news made of them: an event queue the tray polls, desktop bubbles over
D-Bus, or just the log.

The worker, the job flow and the routes emit typed job events (:class:`JobEvents`, modelled on
huey's signals: started, progress, done, failed, paused, resumed, stalled, warning) and go on; what
becomes of an event is its subscribers' business, wired by the composition root: the news below
(:class:`Notifier`), the job's progress on record and the service manager's status line
(:mod:`midframe.daemon.jobs.progress_sinks`). A subscriber is called on the emitting thread, so it
only records or hands on, never waits.

Every job event but progress (and progress at most every ``progress_interval_s``) becomes news: an
event (``GET /events``), and each is shown once, by one of two:
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
after-job commands: :mod:`midframe.daemon.sinks`) subscribe to the news (``Notifier.subscribe``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loguru import logger

from midframe.desktop_bubbles import DesktopNotifier
from midframe.engine import Progress
from midframe.errors import StoreUnwritable
from midframe.log import escape
from midframe.sentences import format_duration

TRAY_TTL_S = 15.0  # a tray that polled this recently is left to show new events
TRAY_GRACE_S = 4.0  # ... if it takes them this soon (it polls every second)
KINDS = ("started", "progress", "done", "failed", "paused", "resumed", "stalled", "warning")
Kind = Literal["started", "progress", "done", "failed", "paused", "resumed", "stalled", "warning"]


@dataclass(frozen=True)
class JobEvent:
    """Something that happened to a job (``job_id``) or to the daemon's work as a whole (None)."""

    kind: Kind
    job_id: int | None = None
    name: str = ""                     # the job's file name as it arrived
    text: str = ""                     # failed, paused: why; stalled: what makes no progress; warning: all of it
    output_name: str = ""              # done: the name its output took in the outbox
    seconds: float = 0.0               # done: how long the job took
    resumed_at: float | None = None    # started: the fraction a resumed job goes on from
    progress: Progress | None = None   # progress: the pipeline's last report


JobSubscriber = Callable[[JobEvent], None]


class JobEvents:
    """The emitter the worker, the flow and the routes share. Subscribers are called in the order they
    subscribed, on the emitting thread; one that fails is logged and the others still hear the event,
    but for ``StoreUnwritable``: a job's progress that cannot be recorded must stop the job, so it
    goes back to the emitter (``Running.on_progress`` stops the job and the worker pauses)."""

    def __init__(self) -> None:
        self._subscribers: list[JobSubscriber] = []

    def subscribe(self, subscriber: JobSubscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: JobEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except StoreUnwritable:
                raise
            except Exception:  # one subscriber's fault must not end the job that emitted the event
                logger.exception("a subscriber of the job events failed on a {} event", event.kind)

    def started(self, job_id: int, name: str, *, resumed_at: float | None = None) -> None:
        self.emit(JobEvent("started", job_id, name, resumed_at=resumed_at))

    def progress(self, job_id: int, name: str, progress: Progress) -> None:
        self.emit(JobEvent("progress", job_id, name, progress=progress))

    def done(self, job_id: int, name: str, output_name: str, seconds: float) -> None:
        self.emit(JobEvent("done", job_id, name, output_name=output_name, seconds=seconds))

    def failed(self, job_id: int, name: str, reason: str) -> None:
        self.emit(JobEvent("failed", job_id, name, text=reason))

    def paused(self, reason: str) -> None:
        self.emit(JobEvent("paused", text=reason))

    def resumed(self) -> None:
        self.emit(JobEvent("resumed"))

    def stalled(self, job_id: int, name: str, sentence: str) -> None:
        self.emit(JobEvent("stalled", job_id, name, text=sentence))

    def warning(self, text: str) -> None:
        self.emit(JobEvent("warning", text=text))


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
    """The job events as news (a subscriber of :class:`JobEvents`): always records an event in the
    log; then tray, desktop or log only."""

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
        """Call ``listener`` with every piece of news from now on, on the thread that emits it (the
        worker's): it must only hand the event on (``midframe.daemon.sinks.QueuedSink``), never wait."""
        self._listeners.append(listener)

    def __call__(self, event: JobEvent) -> None:
        """A job event, made news."""
        job_id = event.job_id if event.job_id is not None else 0
        if event.kind == "started":
            self.started(job_id, event.name, resumed_at=event.resumed_at)
        elif event.kind == "progress" and event.progress is not None:
            self.progress(job_id, event.name, event.progress)
        elif event.kind == "done":
            self.done(job_id, event.name, event.output_name, event.seconds)
        elif event.kind == "failed":
            self.failed(job_id, event.name, event.text)
        elif event.kind == "paused":
            self.paused(event.text)
        elif event.kind == "resumed":
            self.resumed()
        elif event.kind == "stalled":
            self.stalled(job_id, event.name, event.text)
        elif event.kind == "warning":
            self.warning(event.text)

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
