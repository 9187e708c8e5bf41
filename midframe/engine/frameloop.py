"""The model loop: walks the output timeline, batches frame pairs for the interpolator, sends frames on.

Frames are passed by reference: the reader gives each frame its own array and no stage modifies
one, so frames at t=0 reach the encoder as the very array the decoder made. Between batches it
reports progress and checks the pause/abort flags. What each output frame is made of is the
planner's decision (``midframe.engine.pairs``), which may read thumbnails up to ``pairs.context``
frames either side: the reader starts that far before the first frame needed (``first_source``), and
the loop reads ahead only as far as the planner asks (on ones, a frame or two).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from midframe.engine import pairs
from midframe.engine.conversion import JobControl, Progress, ProgressCallback
from midframe.engine.eta import SteadyRate
from midframe.engine.interpolators.base import FramePair, Interpolator
from midframe.engine.settings import EngineConfig
from midframe.engine.stages import END, Decoder, Encoder
from midframe.engine.timeline import Timeline
from midframe.errors import EngineError, MidframeError

PROGRESS_INTERVAL_S = 0.25

@dataclass
class Counts:
    model_s: float = 0.0
    interpolated: int = 0
    static: int = 0
    cut: int = 0
    # Source frames that dedup treated as repeats of a drawing (their output frames are in-betweens).
    dedup_repeats: int = 0


def first_source(timeline: Timeline, start: int, engine: EngineConfig) -> int:
    """The first source frame the loop reads to make output frames from ``start`` on."""
    return max(0, timeline.frame(start).source - pairs.context(engine))


class _Slot:
    """A place in the output order for the result of pair ``k`` of the current batch."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k


class FrameLoop:
    def __init__(
        self,
        *,
        timeline: Timeline,
        start: int,
        engine: EngineConfig,
        batch_size: int,
        interpolator: Interpolator,
        decoder: Decoder,
        encoder: Encoder,
        control: JobControl,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.timeline = timeline
        self.start = start
        self.engine = engine
        self.batch_size = batch_size
        self.interpolator = interpolator
        self.decoder = decoder
        self.encoder = encoder
        self.control = control
        self.on_progress = on_progress
        self.counts = Counts()
        self.sent = start
        self._window: dict[int, np.ndarray] = {}
        self._thumbs: dict[int, np.ndarray] = {}
        self._highest = -1
        self._context = pairs.context(engine)
        self._last_repeat = -1
        self._let_go_at = -1
        self.planner = pairs.PairPlanner(timeline=timeline, engine=engine, thumb=self._thumb)
        self._batch: list[FramePair] = []
        self._pending: list[np.ndarray | _Slot] = []
        self._since_checkpoint = 0
        self._rate = SteadyRate(frames=start, now=time.monotonic())
        self._last_progress = 0.0
        self._preparing: str | None = None

    def _fetch(self, index: int) -> None:
        """Read ahead to source frame ``index``."""
        while self._highest < index:
            item = self.decoder.get()
            if item is END:
                raise MidframeError(f"the decoder ended before source frame {index}")
            got, frame, thumb = item
            self._highest = got
            self._window[got] = frame
            self._thumbs[got] = thumb

    def _frame(self, index: int) -> np.ndarray:
        self._fetch(index)
        return self._window[index]

    def _thumb(self, index: int) -> np.ndarray:
        self._fetch(index)
        return self._thumbs[index]

    def _let_go(self, source: int) -> None:
        """Forget frames no decision from ``source`` on can need: a held drawing starts at most
        ``dedup_max_run`` frames back; its cut test looks ``context`` frames back."""
        if source == self._let_go_at:
            return
        self._let_go_at = source
        keep_frames = source - self.engine.dedup_max_run - 1
        for old in [key for key in self._window if key < keep_frames]:
            del self._window[old]
        keep_thumbs = source - self._context
        for old in [key for key in self._thumbs if key < keep_thumbs]:
            del self._thumbs[old]
        self.planner.forget(keep_thumbs)

    def run(self) -> None:
        self.control.checkpoint()
        self._progress(force=True)
        batch_size = self.batch_size
        for out in self.timeline.frames(self.start):
            self._let_go(out.source)
            step = self.planner.step(out.source, out.t)
            item: np.ndarray | _Slot
            if step.kind == "motion":
                self._batch.append(FramePair(index=step.a, a=self._frame(step.a), b=self._frame(step.b), t=step.t,
                                              later=step.b))
                item = _Slot(len(self._batch) - 1)
                self.counts.interpolated += 1
                if step.repeat:
                    self._count_repeat(out.source)
            else:
                if step.kind == "cut":
                    self.counts.cut += 1
                elif step.kind == "static":
                    self.counts.static += 1
                item = self._frame(step.a)
            if self._batch:
                self._pending.append(item)
            else:
                assert not isinstance(item, _Slot)  # a slot is in the batch, which is then not empty
                self._send(item)
            if len(self._batch) >= batch_size:
                self._flush()
            elif not self._batch and self._since_checkpoint >= batch_size:
                self._between_batches()
        self._flush()
        self._progress(force=True)

    def _count_repeat(self, source: int) -> None:
        if source > self._last_repeat:
            self._last_repeat = source
            self.counts.dedup_repeats += 1

    def _send(self, frame: np.ndarray) -> None:
        self.encoder.put(frame)
        self.sent += 1
        self._since_checkpoint += 1

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            started = time.perf_counter()
            try:
                results = self.interpolator.interpolate(batch)
            except MidframeError:
                raise
            except Exception as exc:
                raise EngineError(f"the {self.interpolator.name} engine failed: {type(exc).__name__}: {exc}") from exc
            self.counts.model_s += time.perf_counter() - started
            if len(results) != len(batch):
                raise EngineError(f"the {self.interpolator.name} engine returned {len(results)} frames for {len(batch)} pairs")
            pending, self._pending = self._pending, []
            for item in pending:
                self._send(results[item.k] if isinstance(item, _Slot) else item)
        self._between_batches()

    def _between_batches(self) -> None:
        self._since_checkpoint = 0
        self._progress()
        self._rate.pause(now=time.monotonic())
        try:
            self.control.checkpoint()
        finally:
            self._rate.resume(now=time.monotonic())

    def preparing(self, text: str | None) -> None:
        """The engine says it is doing one-time work for this frame size (``text``), or is done with
        it (None): reported at once, and the speed measured afresh after it."""
        self._preparing = text
        self._progress(force=True)
        if text is not None:
            self._rate.rewarm()  # after the sample above, so the preparation counts as warm-up

    def _progress(self, *, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        rate = self._rate
        rate.sample(self.sent, now=now)
        eta = None if self._preparing else rate.eta_s(self.timeline.frames_out)
        self.on_progress(Progress(self.sent, self.timeline.frames_out, rate.fps(), rate.active_s(now=now), eta,
                                  preparing=self._preparing))
