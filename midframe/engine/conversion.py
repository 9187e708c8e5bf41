"""What a running conversion shares with its caller: progress reports, pause/abort flags, the report."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midframe.engine.children import Children
from midframe.errors import Aborted


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int
    fps: float
    elapsed_s: float
    eta_s: float | None
    # One-time work under way that makes no frames, in words: "preparing RIFE for 1920x1080 (once per
    # size, about 30 s)"; None once frames are made.
    preparing: str | None = None

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0


ProgressCallback = Callable[[Progress], None]


class JobControl:
    """Flags the frame loop reads between batches: pause holds it, abort ends it with ``Aborted``.

    ``children``: the job's ffmpeg children and their progress deadline; an abort also bounds every
    wait on them (``Children.stop``), so a stop never hangs on a stuck child."""

    def __init__(self, *, children: Children | None = None) -> None:
        self.children = children or Children()
        self._running = threading.Event()
        self._running.set()
        self._aborted = threading.Event()
        self._reason = "stopped"

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def abort(self, reason: str = "stopped") -> None:
        self._reason = reason
        self._aborted.set()
        self.children.stop(reason)
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def raise_if_aborted(self) -> None:
        """Raise ``Aborted`` once abort was asked for; never blocks (for loops that wait on threads)."""
        if self._aborted.is_set():
            raise Aborted(self._reason)

    def checkpoint(self, *, poll_s: float = 0.5) -> None:
        """Block while paused; raise ``Aborted`` once abort was asked for."""
        while not self._running.wait(poll_s):
            pass
        self.raise_if_aborted()


@dataclass
class PipelineReport:
    source: Path
    output: Path
    engine: str
    device: str
    frames_in: int
    frames_out: int
    fps_in: str
    fps_out: str
    wall_s: float
    model_s: float
    frames_interpolated: int = 0
    frames_static: int = 0
    frames_cut: int = 0
    dedup_repeats: int = 0  # source frames dedup treated as repeats of a held drawing
    resumed_from_frame: int = 0
    engine_requested: str = ""  # the engine asked for; ``engine`` differs only after a default fell back
    # engine auto: per scene {start, end, engine, scores, samples} (source frames start .. end - 1)
    scenes: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = str(self.source)
        data["output"] = str(self.output)
        return data
