"""Subscribers of the job events (``Notifier.subscribe``) that deliver them somewhere slow: Apprise
URLs (:mod:`midframe.daemon.apprise_sink`), after-job commands (:mod:`midframe.daemon.after_job`).

The job flow emits an event and goes on; a :class:`QueuedSink` only puts it in a bounded queue, and
its own thread delivers it. A receiver that hangs therefore never holds up a job, and while one is
slow at most ``capacity`` events wait for it (later ones are dropped, with a log line).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from loguru import logger

from midframe.daemon.jobs.events import Event
from midframe.loop_thread import QueueThread

Deliver = Callable[[Event], None]


class QueuedSink:
    """Calls ``deliver(event)`` from a thread named ``name`` for each event ``wanted`` accepts (asked on
    the emitting thread, so it must be quick). The thread starts with the first such event."""

    def __init__(self, name: str, deliver: Deliver, *, wanted: Callable[[Event], bool],
                 capacity: int = 100) -> None:
        self.name = name
        self._deliver = deliver
        self._wanted = wanted
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._thread: QueueThread[Event] | None = None
        self._closed = False

    def __call__(self, event: Event) -> None:
        if not self._wanted(event):
            return
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = QueueThread(self._queue, self._deliver_one, name=self.name)
                self._thread.start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            logger.warning("{}: still busy with earlier events; dropping {!r}", self.name, event.title)

    def _deliver_one(self, event: Event) -> None:
        try:
            self._deliver(event)
        except Exception:  # the thread goes on either way; this line names the event that failed
            logger.exception("{}: delivering {!r} failed", self.name, event.title)

    def close(self, timeout: float) -> bool:
        """Deliver what is queued, for at most ``timeout`` seconds; False if that was not enough (the
        thread is a daemon thread: it does not keep the process alive)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        thread.join(timeout)
        return not thread.is_alive()
