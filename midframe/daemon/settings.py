"""The config the daemon runs with, re-read between jobs when the file changes (and on SIGHUP); the
file is watched also when it did not exist at the start. Each reload is logged with what changed.

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


SHOWN_CHANGES = 8


def _value(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _diff(before: object, after: object, key: str) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for name in list(before) + [name for name in after if name not in before]:
            inner = f"{key}.{name}" if key else str(name)
            if name not in after:
                changes.append(f"{inner} removed")
            elif name not in before:
                changes.append(f"{inner} added")
            else:
                changes.extend(_diff(before[name], after[name], inner))
        return changes
    return [] if before == after else [f"{key} {_shown(before)} -> {_shown(after)}"]


def config_changes(old: Config, new: Config) -> list[str]:
    """Every key whose value differs, as ``engine.factor 2 -> 3`` (``profiles.slow added``), in the
    config's order (pure)."""
    return _diff(old.model_dump(mode="json"), new.model_dump(mode="json"), "")


def _shown(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in prefixes)


def _section(change: str) -> str:
    parts = change.split(" ")[0].split(".")
    return ".".join(parts[:2]) if parts[0] == "daemon" else parts[0]


def _summary(changes: list[str]) -> str:
    """``engine changed: engine.factor 2 -> 3``: the sections, then each key."""
    if not changes:
        return "nothing changed"
    sections = list(dict.fromkeys(_section(change) for change in changes))
    more = len(changes) - SHOWN_CHANGES
    return (f"{', '.join(sections)} changed: " + ", ".join(changes[:SHOWN_CHANGES])
            + (f" and {more} more" if more > 0 else ""))


class ConfigSource:
    """The current config; ``current()`` re-reads the file when its mtime or size changed, also when
    it did not exist before (a file written after the start is taken like an edit)."""

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
            return self._reload(asked=False)
        return self._config

    def reload(self) -> Config:
        """Read the file now (SIGHUP), and say so even when nothing changed."""
        return self._reload(asked=True)

    def _reload(self, *, asked: bool) -> Config:
        with self._lock:
            if self.path is None:
                if asked:
                    logger.info("config not reloaded: the daemon was started without a config file")
                return self._config
            stamp = self._file_stamp()
            if not asked and stamp == self._stamp and self._clock() < self._retry_at:
                return self._config  # another thread took this change already
            self._stamp = stamp
            if stamp is None:
                logger.info("config file {} is not there (any more); the settings in force are kept", self.path)
                return self._config
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
        changes = config_changes(old, fresh)
        fixed = [key for key in RESTART_KEYS if _value(old, key) != _value(fresh, key)]
        later = [change for change in changes if not _under(change.split(" ")[0], RESTART_KEYS)]
        if later or not fixed:
            logger.info("config reloaded from {}: {}{}", self.path, _summary(later),
                        " (from the next job on)" if later else "")
        if fixed:
            logger.warning("config: {} changed; that takes effect after a restart", ", ".join(fixed))
        return fresh
