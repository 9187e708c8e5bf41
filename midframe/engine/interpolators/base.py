"""The Interpolator protocol every engine implements, and the WeightsProvider of an engine with weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np  # annotations only: the registry (and the config through it) stays light to import

# Called by an engine with a sentence ("preparing RIFE for 1920x1080 (once per size, about 30 s)") when long
# one-time work starts, and with None when it is done, so a status can say what a job waits for.
Preparing = Callable[[str | None], None]


@dataclass(frozen=True)
class FramePair:
    """Make the frame at time ``t`` (0 < t < 1) between source frames ``index`` and ``index + 1``
    (or ``later``: dedup pairs a held drawing with the next one, a few frames on).

    ``a`` and ``b`` are HxWx3 RGB arrays, uint8 (8-bit sources) or uint16 (high bit depth), never
    modified by an interpolator. ``index`` lets an engine reuse per-frame work across pairs.
    """

    index: int
    a: np.ndarray
    b: np.ndarray
    t: float
    later: int | None = None

    @property
    def b_index(self) -> int:
        """The source frame ``b`` is."""
        return self.index + 1 if self.later is None else self.later


@runtime_checkable
class Interpolator(Protocol):
    """An engine, as the frame loop and the pipeline see it. What an engine is before it is built (whether
    it needs weights, chooses its batch...) is its ``Capabilities`` in the registry; what a built one
    chose is read here."""

    name: str
    # Set by the frame loop for the length of a job, None otherwise; an engine with one-time work per frame
    # size (Capabilities.prepares_per_size) calls it, any other only keeps it.
    on_preparing: Preparing | None

    @property
    def device(self) -> str:
        """Where it runs: ``cpu``, ``cuda:0``..."""

    @property
    def batch_size(self) -> int | None:
        """Pairs per ``interpolate`` call it chose (known after ``load``); None: no preference, the
        pipeline takes ``engine.batch_size`` or its default."""

    @property
    def threads(self) -> int:
        """CPU threads the model keeps busy; the pipeline gives ffmpeg (and OpenCV) what is left. 0: none."""

    @property
    def uses_opencv(self) -> bool:
        """Its threads are OpenCV's: the pipeline then leaves ``cv2.setNumThreads`` alone."""

    @property
    def backend(self) -> str | None:
        """The runtime it chose (``torch``, ``openvino``), for the report; None where there is no choice."""

    def load(self) -> None:
        """Get ready to work (load weights, pick threads). Called once before the first batch."""

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        """One output frame per pair, same shape and dtype as the inputs."""

    def close(self) -> None:
        """Free memory and threads. Safe to call twice."""


class InstalledModel(Protocol):
    """One installed set of weights, as ``midframe models list`` shows it."""

    @property
    def version(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def sha256(self) -> str: ...

    @property
    def source(self) -> str: ...


class WeightsProvider(Protocol):
    """An engine's model weights in ``models_dir``: fetched, found, imported (``midframe models``)."""

    # Who the weights are for, in sentences: "RIFE weights ready: PATH".
    title: str
    # How to get them, for a sentence that says they are missing.
    how_to_get: str

    def fetch(self, models_dir: Path, *, force: bool = False) -> Path:
        """Install the published weights unless already there; their path. ``WeightsError`` offline."""

    def installed(self, models_dir: Path) -> Sequence[InstalledModel]:
        """What ``models_dir`` holds for this engine ([] when nothing complete)."""

    def import_file(self, path: Path, models_dir: Path) -> InstalledModel:
        """Install a weights file the user has, after checking it."""

    def ensure(self, models_dir: Path) -> Path | None:
        """The installed weights, fetched first if missing; None (with a warning saying how) if that fails."""
