"""The daemon's side of the farm: one Dask client kept connected, the farm's state, and ``convert``.

The daemon's worker converts a job as always (``midframe.engine.pipeline.convert``: plan, join,
verify, publish); with a farm, the segments in between are made on the farm's workers by a
``JobRenderer`` (:mod:`midframe.farm.renderer`), which records each segment in the manifest as it comes
back (in any order, with the worker that made it), so after any restart only what is missing is
submitted. The job store stays the source of truth; the scheduler keeps nothing the daemon needs: it
may restart at any time.

A monitor thread keeps the connection (reconnecting when the scheduler comes back) and the farm's
state for ``status``: ``{"scheduler", "workers", "busy", "connected", "problem"}``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from distributed import Client
from loguru import logger

from midframe.engine.conversion import PipelineReport
from midframe.engine.ffmpeg import FFmpeg
from midframe.errors import FarmUnavailable
from midframe.farm.renderer import KEY_PREFIX, JobRenderer
from midframe.farm.slots import SLOT, task_resources
from midframe.loop_thread import LoopThread

MONITOR_S = 2.0
CONNECT_TIMEOUT_S = 5.0
Convert = Callable[..., PipelineReport]


class FarmCoordinator:
    """Holds the Dask client for the daemon; ``convert`` has the signature of the pipeline's."""

    def __init__(
        self,
        scheduler: str,
        *,
        resources: Mapping[str, float],
        fallback_local: bool,
        convert: Convert,
        ffmpeg: FFmpeg,
        make_client: Callable[[str], Client] | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.scheduler = scheduler
        self.resources = task_resources(resources)
        self.fallback_local = fallback_local
        self._convert = convert
        self._ffmpeg = ffmpeg
        self._make_client = make_client or (lambda address: Client(address, timeout=CONNECT_TIMEOUT_S,
                                                                      set_as_default=False))
        self._on_change = on_change
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._state: dict[str, Any] = {"scheduler": scheduler, "workers": 0, "busy": 0, "connected": False,
                                       "problem": f"connecting to {scheduler}"}
        self._slots = 0
        self._live: dict[str, Counter[str]] = {}
        self._connected = threading.Event()
        self._monitor = LoopThread(name="midframe-farm", period_s=MONITOR_S, iterate=lambda now: self._refresh())

    # --- connection --------------------------------------------------------------------------------

    def start(self) -> None:
        self._monitor.start()

    def close(self) -> None:
        self._monitor.stop()
        if self._monitor.is_alive():
            self._monitor.join(timeout=15)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception as exc:  # closing a client whose scheduler is gone
                logger.debug("closing the farm client: {}", exc)

    def _refresh(self) -> None:
        """One round of the monitor: (re)connect, then read the workers and what they are doing."""
        was = self._connected.is_set()
        client = self._client
        if client is not None and client.status not in ("running", "connecting"):
            with self._lock:
                self._client = None
            client = None
        if client is None:
            try:
                client = self._make_client(self.scheduler)
            except (OSError, TimeoutError) as exc:
                self._set_problem(f"farm.scheduler: {self.scheduler} does not answer ({exc or type(exc).__name__}); "
                                  "start it with `midframe farm scheduler`", connected=False)
                if was:
                    self._on_change()
                return
            with self._lock:
                self._client = client
            logger.info("connected to the farm scheduler {}", self.scheduler)
        try:
            info = client.scheduler_info(n_workers=-1)
            processing = client.processing()
        except Exception as exc:  # the scheduler went away between two calls: next round reconnects
            self._set_problem(f"farm.scheduler: lost the connection to {self.scheduler} ({exc or type(exc).__name__})", connected=False)
            if was:
                self._on_change()
            return
        workers = info.get("workers", {})
        slots = [meta.get("resources", {}).get(SLOT, 0) for meta in workers.values()]
        busy = sum(1 for keys in processing.values() if any(str(key).startswith(KEY_PREFIX) for key in keys))
        fit = sum(1 for count in slots if count > 0)
        problem = None if fit else f"no farm workers are connected to {self.scheduler} yet"
        with self._lock:
            self._slots = int(sum(slots))
            self._state = {"scheduler": self.scheduler, "workers": fit, "busy": busy, "connected": True,
                           "problem": problem}
        self._connected.set()
        if not was:
            self._on_change()

    def _set_problem(self, problem: str, *, connected: bool) -> None:
        with self._lock:
            if self._state.get("problem") != problem:
                logger.warning("{}", problem)
            self._state = {**self._state, "connected": connected, "problem": problem, "busy": 0,
                           "workers": self._state["workers"] if connected else 0}
        if not connected:
            self._connected.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def client(self) -> Client:
        with self._lock:
            client = self._client
        if client is None or client.status != "running" or not self._connected.is_set():
            raise FarmUnavailable(self.state()["problem"] or f"farm.scheduler: {self.scheduler} is not connected")
        return client

    def window(self) -> int:
        """Segments a job keeps submitted at once: every slot of the farm, and one waiting."""
        with self._lock:
            return max(1, self._slots) + 1

    # --- jobs ------------------------------------------------------------------------------------

    def convert(self, source: Path, destination: Path, **kwargs: Any) -> PipelineReport:
        """The pipeline's ``convert`` with the segments made on the farm (or here, see fallback_local)."""
        if not self.connected:
            if self.fallback_local:
                logger.warning("{}; converting {} on this machine (farm.fallback_local)",
                               self.state()["problem"], Path(source).name)
                return self._convert(source, destination, **kwargs)
            raise FarmUnavailable(self.state()["problem"] or f"farm.scheduler: {self.scheduler} is not connected")
        work_dir = Path(kwargs["work_dir"])
        renderer = JobRenderer(self, source=Path(source), ffmpeg=self._ffmpeg)
        with self._lock:
            self._live[str(work_dir)] = renderer.workers
        try:
            return self._convert(source, destination, renderer=renderer, **kwargs)
        finally:
            with self._lock:
                self._live.pop(str(work_dir), None)

    def live_workers(self, work_dir: Path) -> dict[str, int] | None:
        """For a job being converted: how many of its segments each worker made so far."""
        with self._lock:
            found = self._live.get(str(work_dir))
            return None if found is None else dict(found)
