"""Starting and looking after the daemon: the one way `midframe watch`, `midframe run` and the Windows
service do it (the start-up half of the composition root).

``start_daemon`` loads the config, sets up logging (stderr and the log file, or the file alone for a
service), picks the service manager's listener (systemd from the environment), builds and starts the
daemon and records its state dir for clients (``locate``). ``serve`` is the housekeeping loop until
a stop is asked for: signal flags turned into requests, config reloads, status lines, a look at the
job database's file, and the watchdog keep-alive, sent only while the worker is not stuck (``liveness``). ``finish`` stops the
daemon after its current batch and removes the record. Whoever owns the main thread decides where
``serve`` runs: on it (`watch`, the service's thread), or on a thread of its own beside the tray.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from loguru import logger

from midframe.api import locate
from midframe.daemon.jobs.liveness import StuckWatch
from midframe.daemon.lifecycle import LifecycleListener, NoLifecycle
from midframe.daemon.root import Daemon, build_daemon
from midframe.log import configure_logging
from midframe.sentences import format_duration
from midframe.signals import SignalFlags, install_signals

HEARTBEAT_S = 2.0  # status line and watchdog keep-alive; systemd's WatchdogSec is far longer
TICK_S = 0.25  # how soon a signal flag is acted on


def service_lifecycle(environ: Mapping[str, str] = os.environ) -> LifecycleListener:
    """systemd's sd_notify when systemd started us (``$NOTIFY_SOCKET``), else a listener that ignores all."""
    if environ.get("NOTIFY_SOCKET") and importlib.util.find_spec("midframe.daemon.sd_notify") is not None:
        from midframe.daemon.sd_notify import SystemdNotifier

        notifier = SystemdNotifier.from_environment(environ)
        if notifier is not None:
            return notifier
    return NoLifecycle()


def start_daemon(
    config_path: Path | None,
    *,
    lifecycle: LifecycleListener | None = None,
    log_to_stderr: bool = True,
    pointer: Path | None = None,
) -> Daemon:
    """Load the config, set up logging, build and start the daemon, record its state dir. Raises what
    start-up raises (``ConfigError``, ``AlreadyRunning``...), with nothing left running."""
    daemon = build_daemon(config_path, lifecycle=lifecycle or service_lifecycle())
    config = daemon.settings.current_cached()
    configure_logging(level=config.logging.level, log_dir=daemon.paths.log_dir, stderr=log_to_stderr)
    daemon.start()
    daemon.pointer = pointer or locate.pointer_path()
    try:
        locate.record(daemon.pointer, state_dir=daemon.paths.state_dir, config_path=daemon.settings.path)
    except OSError as exc:  # clients then fall back to the config's state dir: worth a line, not a failure
        logger.warning("could not record the state dir in {}: {}", daemon.pointer, exc.strerror or exc)
    return daemon


def finish(daemon: Daemon) -> bool:
    """Stop after the current batch, release everything, remove the record if still ours. Idempotent."""
    clean = daemon.close()
    if daemon.pointer is not None:
        try:
            locate.forget(daemon.pointer, state_dir=daemon.paths.state_dir)
        except OSError as exc:
            logger.debug("pointer {}: {}", daemon.pointer, exc)
    return clean


class StallNews:
    """Tells the job events once per stall that the current job's ffmpeg child makes no progress
    (status shows it at every heartbeat; news goes out once, and again only after it moved on)."""

    def __init__(self, notify: Callable[[int, str, str], None]) -> None:
        self._notify = notify
        self._said_for: int | None = None

    def see(self, current: Mapping[str, object] | None) -> None:
        stalled = current.get("stalled") if current else None
        if not current or not stalled:
            self._said_for = None
            return
        job_id = int(current["id"])  # type: ignore[call-overload]
        if self._said_for != job_id:
            self._said_for = job_id
            self._notify(job_id, str(current.get("name", "?")), str(stalled))


def _worker_running(daemon: Daemon) -> bool:
    # Worker.join(0) returns at once: True when its thread has ended.
    return daemon.worker is None or not daemon.worker.join(0)


def serve(
    daemon: Daemon,
    *,
    flags: SignalFlags | None = None,
    watch: StuckWatch | None = None,
    clock: Callable[[], float] = time.monotonic,
    heartbeat_s: float = HEARTBEAT_S,
    tick_s: float = TICK_S,
) -> None:
    """Look after a started daemon until a stop is asked for (signal, API, ``request_stop``), then
    say ``stopping``. ``finish()`` afterwards."""
    watch = watch or StuckWatch()
    stalls = StallNews(daemon.events.stalled)
    lifecycle = daemon.lifecycle
    next_beat = clock()
    while True:
        if flags is not None:
            if flags.stop:
                daemon.request_stop()
            if flags.take_reload():
                daemon.request_reload()
        if daemon.wait(tick_s):
            break
        if daemon.take_reload_request():
            lifecycle.reloading()
            daemon.reload_config()
            lifecycle.ready()
        now = clock()
        if now >= next_beat:
            next_beat = now + heartbeat_s
            daemon.settings.current()  # an edit is taken (and logged) now, not only when a job starts
            daemon.check_store()
            _beat(daemon, watch, stalls, now)
    logger.info("stopping after the current batch")
    lifecycle.stopping()


def _beat(daemon: Daemon, watch: StuckWatch, stalls: StallNews, now: float) -> None:
    try:
        status = daemon.status()
    except Exception:  # the job store failing: no keep-alive, so a lasting failure restarts us
        if not watch.stuck:
            logger.opt(exception=True).error("cannot read the daemon's status; no more watchdog keep-alives")
        watch.stuck = True
        return
    stalls.see(status.get("current"))
    was_stuck = watch.stuck
    if watch.alive(status, now=now, worker_running=_worker_running(daemon)):
        if was_stuck:
            logger.info("the worker moves again")
        daemon.lifecycle.heartbeat()
        daemon.lifecycle.status(daemon.status_line())
        return
    name = (status.get("current") or {}).get("name", "the current job")
    line = (f"stuck: no progress on {name} for {format_duration(watch.unchanged_for(now))}"
            if _worker_running(daemon) else "stuck: the worker thread has ended")
    if not was_stuck:
        logger.error("{}; no more watchdog keep-alives, so a service manager restarts midframe", line)
    daemon.lifecycle.status(line)


def watch_in_foreground(config_path: Path | None, *, log_to_stderr: bool = True) -> int:
    """``midframe watch``: the daemon on this thread until SIGTERM, SIGINT or ``midframe stop``."""
    flags = SignalFlags()
    undo = install_signals(flags)
    try:
        daemon = start_daemon(config_path, log_to_stderr=log_to_stderr)
        try:
            serve(daemon, flags=flags)
        finally:
            finish(daemon)
    finally:
        undo()
    return 0
