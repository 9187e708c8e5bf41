"""Starting and looking after the daemon: the one way `midframe watch`, `midframe run` and the Windows
service do it (the start-up half of the composition root).

``start_daemon`` loads the config, sets up logging (stderr and the log file, or the file alone for a
service), picks the service manager's listener (systemd from the environment), builds and starts the
daemon and records its state dir for clients (``locate``). :class:`Housekeeping` is the housekeeping
loop until a stop is asked for: signal flags turned into requests, config reloads (it alone reloads
and vets the config; every other thread reads the snapshot), status lines, a look at the job
database's file, and the watchdog keep-alive, sent only while the worker is not stuck (``liveness``).
``finish`` stops the daemon after its current batch and removes the record. Whoever owns the main
thread decides where the loop runs: on it (``serve``: `watch`, the service's thread), or on a thread
of its own beside the tray.
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
from midframe.loop_thread import LoopThread
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
    config = daemon.settings.snapshot()
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


class Housekeeping(LoopThread):
    """The daemon's housekeeping loop, one iteration every ``tick_s`` until a stop is asked for (signal,
    API, ``request_stop``): signal flags turned into requests, SIGHUP's reload, the config file looked at
    (the one place that reloads and vets it: ``ConfigSource``'s owner), and every ``heartbeat_s`` a look
    at the job database's file, the status line and the watchdog keep-alive. Says ``stopping`` as it
    ends. Runs on a thread of its own (``start``) or on the caller's (``run``)."""

    def __init__(
        self,
        served: Daemon,
        *,
        flags: SignalFlags | None = None,
        watch: StuckWatch | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_s: float = HEARTBEAT_S,
        tick_s: float = TICK_S,
    ) -> None:
        super().__init__(name="midframe-daemon-loop", period_s=tick_s, daemon=False, clock=clock)
        self.served = served
        self._flags = flags
        self._watch = watch or StuckWatch()
        self._stalls = StallNews(served.events.stalled)
        self._heartbeat_s = heartbeat_s
        self._next_beat = float("-inf")

    def should_keep_running(self) -> bool:
        return super().should_keep_running() and not self.served.stop_requested

    def stop(self) -> None:
        super().stop()
        self.served.request_stop()

    def wait(self, timeout: float) -> None:
        self.served.wait(timeout)  # cut short by a stop or reload request

    def iterate(self, now: float) -> None:
        daemon, flags = self.served, self._flags
        if flags is not None:
            if flags.stop:
                daemon.request_stop()
            if flags.take_reload():
                daemon.request_reload()
        if daemon.stop_requested:
            return
        if daemon.take_reload_request():
            daemon.lifecycle.reloading()
            daemon.reload_config()
            daemon.lifecycle.ready()
        daemon.settings.refresh(now)  # an edit is taken (and logged) here, never on the thread that reads it
        if now >= self._next_beat:
            self._next_beat = now + self._heartbeat_s
            daemon.check_store()
            _beat(daemon, self._watch, self._stalls, now)

    def on_thread_stop(self) -> None:
        logger.info("stopping after the current batch")
        self.served.lifecycle.stopping()


def serve(
    daemon: Daemon,
    *,
    flags: SignalFlags | None = None,
    watch: StuckWatch | None = None,
    clock: Callable[[], float] = time.monotonic,
    heartbeat_s: float = HEARTBEAT_S,
    tick_s: float = TICK_S,
) -> None:
    """The housekeeping loop on this thread, until a stop is asked for. ``finish()`` afterwards."""
    Housekeeping(daemon, flags=flags, watch=watch, clock=clock, heartbeat_s=heartbeat_s, tick_s=tick_s).run()


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
