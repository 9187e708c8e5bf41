"""The daemon's side of a render farm (``farm.scheduler``): the coordinator started with the daemon,
and what the worker and the control API ask of it. The coordinator is imported only here, and only
with a scheduler set: a daemon without a farm never loads Dask."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from midframe.config import Config
from midframe.daemon.jobs.services import Convert

FARM_CONNECT_WAIT_S = 8.0


class FarmLink:
    def __init__(self, coordinator: Any) -> None:
        self.coordinator = coordinator  # midframe.farm.coordinator.FarmCoordinator

    @classmethod
    def start(cls, scheduler: str, config: Config, *, convert: Convert, ffmpeg: Any, on_change: Callable[[], None],
              connect_wait_s: float = FARM_CONNECT_WAIT_S) -> FarmLink:
        """Start the coordinator for ``scheduler`` (``config.farm.scheduler``); ``convert`` converts here (fallback_local),
        ``on_change`` is called when the scheduler comes or goes."""
        from midframe.farm.coordinator import FarmCoordinator

        farm = config.farm
        coordinator = FarmCoordinator(scheduler, resources=farm.resources, fallback_local=farm.fallback_local,
                                      convert=convert, ffmpeg=ffmpeg, on_change=on_change)
        coordinator.start()
        # A moment for the first connection, so a daemon that starts with its farm does not pause for it.
        coordinator.wait_connected(connect_wait_s)
        return cls(coordinator)

    @property
    def convert(self) -> Convert:
        return self.coordinator.convert

    def slots(self, config: Config) -> int:
        """Jobs converted at once: several (their segments run elsewhere)."""
        return config.farm.max_jobs

    def problem(self, config: Config) -> str | None:
        """Why jobs cannot go to the farm now, or None (connected, or converting here instead)."""
        if self.coordinator.connected or config.farm.fallback_local:
            return None
        return self.coordinator.state()["problem"] or f"farm.scheduler: {self.coordinator.scheduler} is not connected"

    def state(self) -> dict[str, Any]:
        """``status --json``'s ``farm``."""
        return self.coordinator.state()

    def live_workers(self, work_dir: Path) -> dict[str, int] | None:
        return self.coordinator.live_workers(work_dir)

    def close(self) -> None:
        self.coordinator.close()
