"""The config the daemon runs with, re-read when the file changes (and on SIGHUP); the file is watched
also when it did not exist at the start. Each reload is logged with what changed.

One owner reads and vets it: the daemon's housekeeping loop (``midframe.daemon.startup``) calls
``refresh`` at every heartbeat and ``reload`` on SIGHUP. Every other thread (the worker between jobs,
the watcher, the control API's, the farm's monitor) reads the immutable snapshot installed last, so no
request or arrival ever waits on a trial encode or a torch import, and a job keeps the config it
started with.

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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Installed:
    config: Config
    problems: tuple[str, ...]  # the last vet's verdict on ``config`` (empty until it is vetted)


class ConfigSource:
    """The config in force, and its one owner. Any thread reads the snapshot installed last
    (``snapshot()``, ``problems()``): never the file, never a vet. Only the owner, the daemon's
    housekeeping loop (and start-up, before the threads), reads the file and vets: ``refresh`` when the
    file's mtime or size changed (also when it did not exist before: a file written after the start is
    taken like an edit), ``reload`` on SIGHUP, ``vet`` for the config in force. Each new config or
    verdict it installs is told to ``on_change`` (the worker looks at its pauses again)."""

    def __init__(
        self,
        path: Path | None,
        config: Config,
        *,
        vet: Callable[[Config], list[str]] = lambda config: [],
        in_force_works: Callable[[], bool] = lambda: True,
        on_refused: Callable[[str], None] = lambda text: None,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_REFUSED_S,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._installed = _Installed(config, ())
        self._vet = vet
        self._in_force_works = in_force_works
        self._on_refused = on_refused
        self._on_change = on_change
        self._clock = clock
        self._retry_s = retry_s
        self._lock = threading.Lock()  # the owner's calls, one at a time (start-up's vet, then the loop's)
        self._stamp = self._file_stamp()
        # An edit refused because it cannot work here is vetted again now and then: what it needs may
        # arrive without the file changing (`midframe models fetch`, a GPU back).
        self._refused: str | None = None
        self._retry_at = float("inf")
        # So is the config in force while the daemon is paused for it (``in_force_works`` false), and
        # at the next look once someone asks (``look_again``).
        self._revet_at = float("-inf")
        self._asked = threading.Event()

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    # --- any thread ------------------------------------------------------------------------------

    def snapshot(self) -> Config:
        """The config in force: changed only by the owner's ``refresh``/``reload``."""
        return self._installed.config

    def problems(self, config: Config | None = None) -> list[str]:
        """The last verdict on the config in force (``config``, when given, is that one: the worker asks
        about the snapshot it read); the owner keeps it fresh while the daemon is paused for it."""
        return list(self._installed.problems)

    def look_again(self) -> None:
        """Ask the owner to vet the config in force at its next look if the daemon is paused for it (a
        person resumed; the engine's weights were just fetched). Returns at once: the vet is the owner's."""
        self._asked.set()

    # --- the owner (the housekeeping loop) ---------------------------------------------------------

    def vet(self) -> list[str]:
        """Vet the config in force now (at start-up); the verdict ``problems()`` reads from then on."""
        with self._lock:
            changed = self._judge(self._clock())
        if changed:
            self._on_change()
        return self.problems()

    def refresh(self, now: float | None = None) -> Config:
        """The housekeeping loop's look: re-read the file if it changed (or a refused edit is due to be
        vetted again); while the daemon is paused for the config in force, vet that one every
        ``retry_s``. Returns the config in force."""
        now = self._clock() if now is None else now
        if self.path is not None and (self._file_stamp() != self._stamp or now >= self._retry_at):
            return self._reload(asked=False, now=now)
        if self._in_force_works():
            self._revet_at = float("-inf")  # a pause for it later is looked into at once
            self._asked.clear()
        elif now >= self._revet_at or self._asked.is_set():
            self._asked.clear()
            with self._lock:
                changed = self._judge(now)
            if changed:
                self._on_change()
        return self.snapshot()

    def reload(self) -> Config:
        """Read the file now (SIGHUP), and say so even when nothing changed."""
        return self._reload(asked=True, now=self._clock())

    def _judge(self, now: float) -> bool:
        """Vet the config in force (with the lock held); whether the verdict changed."""
        installed = self._installed
        problems = tuple(self._vet(installed.config))
        self._revet_at = now + self._retry_s
        self._installed = _Installed(installed.config, problems)
        return problems != installed.problems

    def _reload(self, *, asked: bool, now: float) -> Config:
        with self._lock:
            old = self._installed.config
            if self.path is None:
                if asked:
                    logger.info("config not reloaded: the daemon was started without a config file")
                return old
            stamp = self._stamp = self._file_stamp()
            if stamp is None:
                logger.info("config file {} is not there (any more); the settings in force are kept", self.path)
                self._refused, self._retry_at = None, float("inf")  # nothing left to retry: said once
                return old
            try:
                fresh = load_config(self.path)
            except ConfigError as exc:
                self._refused, self._retry_at = None, float("inf")  # the file must change first: said once
                logger.error("config not reloaded, keeping the last good one: {}", exc)
                self._on_refused(f"config not reloaded: {exc}")
                return old
            problems = self._vet(fresh)
            if problems and self._in_force_works():
                text = "; ".join(problems)
                if text != self._refused:
                    logger.error("config not reloaded, keeping the last good one: {}", text)
                    self._on_refused(f"config not reloaded, the last good one is kept: {text}")
                self._refused, self._retry_at = text, now + self._retry_s
                return old
            self._refused, self._retry_at = None, float("inf")
            self._revet_at = now + self._retry_s
            self._installed = _Installed(fresh, tuple(problems))
        self._on_change()
        changes = config_changes(old, fresh)
        fixed = [key for key in RESTART_KEYS if _value(old, key) != _value(fresh, key)]
        later = [change for change in changes if not _under(change.split(" ")[0], RESTART_KEYS)]
        if later or not fixed:
            logger.info("config reloaded from {}: {}{}", self.path, _summary(later),
                        " (from the next job on)" if later else "")
        if fixed:
            logger.warning("config: {} changed; that takes effect after a restart", ", ".join(fixed))
        return fresh
