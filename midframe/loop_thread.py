"""One base for the long-lived threads: a loop of single iterations, a stop event, start and stop hooks.

Modelled on watchdog's ``BaseThread`` (a stop event, ``should_keep_running()``, hooks to override
instead of ``start``/``stop``) and on huey's consumer loops: ``iterate(now)`` does one round and is
told the time, so a test drives a loop one iteration at a time with the time it chooses, and never
sleeps. ``run()`` repeats it every ``period_s`` until ``stop()``.

An iteration that raises is logged and the loop goes on: one bad round (a file that vanished between
two calls, a scheduler gone mid-question) must not end the thread that every later round needs.
A loop whose work arrives in a queue blocks in ``iterate`` on the queue, with ``period_s`` 0, and is
ended by what it reads there (a sentinel put after the last item, so what was queued is done first).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from loguru import logger

Iterate = Callable[[float], None]
T = TypeVar("T")


class LoopThread(threading.Thread):
    """Calls ``iterate(now)`` every ``period_s`` until stopped. Override ``iterate`` or pass one in;
    override ``wait`` where something besides ``stop()`` should cut a pause short."""

    def __init__(
        self,
        *,
        name: str,
        period_s: float,
        iterate: Iterate | None = None,
        daemon: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=name, daemon=daemon)
        self.period_s = period_s
        self._iterate = iterate
        self._clock = clock
        self._stop_requested = threading.Event()

    @property
    def stopped_event(self) -> threading.Event:
        return self._stop_requested

    def should_keep_running(self) -> bool:
        return not self._stop_requested.is_set()

    def stop(self) -> None:
        """Ask the loop to end after the iteration under way (a pause between two ends at once); from
        any thread. ``join()`` to wait for it."""
        self._stop_requested.set()

    def on_thread_start(self) -> None:
        """On the loop's thread, before the first iteration."""

    def on_thread_stop(self) -> None:
        """On the loop's thread, after the last iteration (also when ``run`` ends by an exception)."""

    def iterate(self, now: float) -> None:
        """One round of the loop's work; ``now`` is the loop's clock."""
        if self._iterate is None:
            raise NotImplementedError(f"{type(self).__name__} needs an iterate()")
        self._iterate(now)

    def wait(self, timeout: float) -> None:
        """The pause between two iterations: ``timeout`` seconds, cut short by ``stop()``."""
        self._stop_requested.wait(timeout)

    def run_once(self, now: float | None = None) -> bool:
        """One iteration, its failure logged; False when it raised."""
        try:
            self.iterate(self._clock() if now is None else now)
        except Exception:
            logger.exception("{}: an iteration failed; the loop goes on", self.name)
            return False
        return True

    def run(self) -> None:
        """The loop; on the thread ``start()`` makes, or called directly on one the caller owns (the main
        thread of ``midframe watch``, which must stay free for signal handlers)."""
        self.on_thread_start()
        try:
            while self.should_keep_running():
                self.run_once()
                if self.should_keep_running():
                    self.wait(self.period_s)
        finally:
            self.on_thread_stop()


class QueueThread(LoopThread, Generic[T]):
    """Hands each item put in ``items`` to ``handle``, one at a time, until it takes ``None`` (put it
    after the last item: what was queued before it is handled first)."""

    def __init__(self, items: queue.Queue[T | None], handle: Callable[[T], None], *, name: str,
                 daemon: bool = True) -> None:
        super().__init__(name=name, period_s=0.0, daemon=daemon)
        self._items = items
        self._handle = handle

    def iterate(self, now: float) -> None:
        item = self._items.get()
        if item is None:
            self.stop()
            return
        self._handle(item)
