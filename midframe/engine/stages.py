"""The two ffmpeg-side threads of the frame loop, and the bounded queues between them and the model.

``Decoder`` reads frames ahead and makes their scene thumbnails; ``Encoder`` writes frames behind
and rolls segments over. Either hands its failure to the model loop, which raises it. While the model
loop waits on either, it also looks at its job's stop (``interrupted`` raises ``Aborted``): a thread
held up by a stuck ffmpeg child must not hold up a stop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from midframe.engine import scenes
from midframe.engine.reader import FrameReader
from midframe.errors import EngineError

QUEUE_BYTES = 384 << 20  # frames held in each queue, at most
END = object()


def queue_frames(frame_bytes: int, batch_size: int) -> int:
    return max(4, min(2 * batch_size + 32, QUEUE_BYTES // max(frame_bytes, 1)))


class Decoder(threading.Thread):
    """Reads frames ahead and makes their thumbnails; hands out ``(index, frame, thumbnail)``."""

    def __init__(self, reader: FrameReader, size: int, *, interrupted: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="midframe-decode", daemon=True)
        self.reader = reader
        self._interrupted = interrupted
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._halt = threading.Event()
        self.wait_s = 0.0

    def run(self) -> None:
        try:
            for index, frame in self.reader:
                if not self._put((index, frame, scenes.thumbnail(frame))):
                    return
            self._put(END)
        except BaseException as exc:  # handed to the model loop, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._halt.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        started = time.perf_counter()
        while True:
            try:
                item = self.queue.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.is_alive():
                    item = END
                    break
                self._interrupted()
        self.wait_s += time.perf_counter() - started
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._halt.set()
        self.reader.close()
        self.join(timeout=30)


class FrameSink(Protocol):
    """Where the encode thread puts output frames: ``SegmentSink``, or one farm segment's file."""

    def put(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class Encoder(threading.Thread):
    """Writes frames behind the model loop; ``finish`` closes the open segment cleanly."""

    def __init__(self, sink: FrameSink, size: int, *, interrupted: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="midframe-encode", daemon=True)
        self.sink = sink
        self._interrupted = interrupted
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.error: BaseException | None = None
        self.wait_s = 0.0

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is END:
                    self.sink.close()
                    return
                self.sink.put(item)
        except BaseException as exc:
            self.error = exc
            self.sink.abort()

    def put(self, frame: Any, *, interruptible: bool = True) -> None:
        started = time.perf_counter()
        while True:
            if self.error is not None:
                raise self.error
            if not self.is_alive():
                raise EngineError("the encode thread ended unexpectedly")
            try:
                self.queue.put(frame, timeout=0.2)
                break
            except queue.Full:
                if interruptible:
                    self._interrupted()
        self.wait_s += time.perf_counter() - started

    def finish(self, timeout: float | None = None) -> None:
        """Let everything queued be written and the open segment be closed; raise what failed."""
        if self.is_alive():
            self.put(END, interruptible=False)  # after a stop too: its children's deadline bounds this
        self.join(timeout)
        if self.error is not None:
            raise self.error

    def kill(self) -> None:
        """After a failure: stop without closing the open segment."""
        self.sink.abort()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        try:
            self.queue.put_nowait(END)
        except queue.Full:
            pass
        self.join(timeout=30)
