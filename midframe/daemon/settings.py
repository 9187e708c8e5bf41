"""The config the daemon runs with, re-read between jobs when the file changes (and on SIGHUP).

Engine, output, resume, notification and per-job daemon settings (on_success, max_attempts,
min_free_mb, stalled_copy_seconds) apply from the next job on; folders, the watcher's settings and the
API port are fixed at start-up. An edit that does not load is reported and the last good config kept;
so is one that loads but cannot work here (``vet`` finds problems: a device this machine lacks, a codec
ffmpeg does not have), unless the config in force cannot work either (the daemon is paused for it),
in which case the newer one is taken and its problems are what the pause says. A refused edit is
vetted again every ``retry_s`` and taken once it works (after ``midframe models fetch``, say).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from midframe.config import Config, load_config
from midframe.errors import ConfigError

RETRY_REFUSED_S = 15.0
# Keys read once at start-up: a change needs a restart.
RESTART_KEYS = (
    "inbox", "outbox", "logging",
    "daemon.state_dir", "daemon.done_dir", "daemon.failed_dir", "daemon.settle_seconds",
    "daemon.rescan_seconds", "daemon.polling", "daemon.recursive", "daemon.extensions", "daemon.api_port",
    "daemon.api_host",
)


def _value(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


class ConfigSource:
    """The current config; ``current()`` re-reads the file when its mtime or size changed."""

    def __init__(
        self,
        path: Path | None,
        config: Config,
        *,
        vet: Callable[[Config], list[str]] = lambda config: [],
        in_force_works: Callable[[], bool] = lambda: True,
        on_refused: Callable[[str], None] = lambda text: None,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_REFUSED_S,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._config = config
        self._vet = vet
        self._in_force_works = in_force_works
        self._on_refused = on_refused
        self._clock = clock
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        # An edit refused because it cannot work here is vetted again now and then: what it needs may
        # arrive without the file changing (`midframe models fetch`, a GPU back).
        self._refused: str | None = None
        self._retry_at = float("inf")

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def current_cached(self) -> Config:
        return self._config

    def current(self) -> Config:
        if self.path is not None and (self._file_stamp() != self._stamp or self._clock() >= self._retry_at):
            return self.reload()
        return self._config

    def reload(self) -> Config:
        with self._lock:
            if self.path is None:
                return self._config
            self._stamp = self._file_stamp()
            try:
                fresh = load_config(self.path)
            except ConfigError as exc:
                logger.error("config not reloaded, keeping the last good one: {}", exc)
                self._on_refused(f"config not reloaded: {exc}")
                return self._config
            problems = self._vet(fresh)
            if problems and self._in_force_works():
                text = "; ".join(problems)
                if text != self._refused:
                    logger.error("config not reloaded, keeping the last good one: {}", text)
                    self._on_refused(f"config not reloaded, the last good one is kept: {text}")
                self._refused, self._retry_at = text, self._clock() + self._retry_s
                return self._config
            self._refused, self._retry_at = None, float("inf")
            old, self._config = self._config, fresh
        changed = [key for key in ("engine", "output", "resume", "notifications", "daemon.on_success",
                                   "daemon.max_attempts", "daemon.min_free_mb", "daemon.stalled_copy_seconds")
                   if _value(old, key) != _value(fresh, key)]
        fixed = [key for key in RESTART_KEYS if _value(old, key) != _value(fresh, key)]
        if changed:
            logger.info("config reloaded from {}: {} changed (from the next job on)", self.path, ", ".join(changed))
        if fixed:
            logger.warning("config: {} changed; that takes effect after a restart", ", ".join(fixed))
        return fresh
