"""Whether the worker still moves: what the systemd watchdog keep-alive is tied to. Pure, no I/O.

The daemon's main loop sends WATCHDOG=1 only while the worker is not stuck, so that systemd
(``WatchdogSec=``) restarts a daemon whose job has hung, not just one whose main loop died. Stuck
means: a job is being worked on (state ``working``) and nothing the daemon reports has changed for
``STUCK_AFTER_S``: not the job, its frames done, the state, nor any count. A paused daemon and an
idle one (nothing queued, or a retry waiting for its time) are never stuck.

Why 30 minutes: progress comes after every batch, and the slowest batch foreseen is RIFE at 4K on a
CPU (about 40 s a frame, four times the 1080p figure in the README's speed table, so 2-3 minutes
for a batch of 4, twice that on a loaded machine). The steps of a job that report no progress (the
probe and packet scan, trial encodes, the final join) are one-shot commands with a time limit of
their own, at most ``engine.ffmpeg.MAX_TIMEOUT_S`` (25 minutes), after which they fail as transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STUCK_AFTER_S = 30 * 60.0


def _snapshot(status: Mapping[str, Any]) -> tuple[Any, ...]:
    current = status.get("current") or {}
    return (status.get("state"), current.get("id"), current.get("frames_done"),
            status.get("queued"), status.get("done"), status.get("failed"))


class StuckWatch:
    """Fed the daemon's ``status()`` every few seconds; says whether the worker is alive."""

    def __init__(self, *, bound_s: float = STUCK_AFTER_S) -> None:
        self.bound_s = bound_s
        self._last: tuple[Any, ...] | None = None
        self._changed_at = 0.0
        self.stuck = False

    def alive(self, status: Mapping[str, Any], *, now: float, worker_running: bool = True) -> bool:
        """False once the worker is stuck (see the module's docstring) or its thread has ended."""
        snapshot = _snapshot(status)
        if snapshot != self._last:
            self._last, self._changed_at = snapshot, now
        working = status.get("state") == "working" and bool(status.get("current"))
        self.stuck = not worker_running or (working and now - self._changed_at >= self.bound_s)
        return not self.stuck

    def unchanged_for(self, now: float) -> float:
        return now - self._changed_at
