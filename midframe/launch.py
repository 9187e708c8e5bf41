"""``midframe run``: the daemon, plus the tray icon where a desktop session exists.

With a desktop, the daemon runs in this process (its threads, from ``build_daemon`` + ``start``)
and the tray's toolkit loop owns the main thread, as pystray requires (macOS most of all). A thread
of ours does the daemon's housekeeping (``serve`` does it on the main thread when headless):
heartbeats and status for a service manager, config reloads, and closing the daemon once a stop is
asked for, so that "Start daemon" in the menu can bring up a new one on the same state dir.

Signals are handled on the main thread and only set flags: SIGTERM and SIGINT quit (tray, then the
daemon after its current batch), SIGHUP re-reads the config. Quitting from the menu stops the
daemon too. Without a desktop, or if no tray backend loads, this is ``midframe watch``; if another
daemon already holds the state dir (a service, say), this is ``midframe tray`` for it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import load_config, resolve_paths
from midframe.daemon.app import Daemon, build_daemon, serve
from midframe.daemon.lifecycle import LifecycleListener, NoLifecycle
from midframe.errors import AlreadyRunning
from midframe.log import configure_logging
from midframe.service.systemd import SystemdNotifier
from midframe.tray.app import TrayIcon, load_tray_toolkit, make_app
from midframe.tray.backend import TrayUnavailable


def main_job(config_path: Path | None) -> int:
    config = load_config(config_path)
    configure_logging(level=config.logging.level, log_dir=resolve_paths(config).log_dir)
    try:
        pystray = load_tray_toolkit()
    except TrayUnavailable as exc:
        logger.info("no tray icon: {}; running the daemon alone", exc)
        return serve(config_path)
    lifecycle: LifecycleListener = SystemdNotifier.from_environment() or NoLifecycle()
    daemon = build_daemon(config_path, lifecycle=lifecycle)
    app = make_app(config_path, config, quit_text="Quit midframe", stop_daemon_on_quit=True)
    tray = TrayIcon(app, pystray)
    try:
        return run_with_tray(daemon, tray)
    except AlreadyRunning as exc:  # e.g. the systemd user service: be its tray
        logger.info("{}; showing the tray icon for it", exc)
        app.quit_text, app.stop_daemon_on_quit = "Quit tray", False
        tray.run()
        return 1 if tray.failed else 0


def run_with_tray(daemon: Daemon, tray: Any) -> int:
    """Start ``daemon``, run ``tray`` on this (the main) thread, and stop the daemon when the tray ends."""
    undo = install_signals(on_stop=lambda: (tray.stop(), daemon.request_stop()), on_reload=daemon.request_reload)
    try:
        daemon.start()
        housekeeper = threading.Thread(target=look_after, args=(daemon,), name="midframe-daemon-loop")
        housekeeper.start()
        try:
            tray.run()
        except Exception as exc:  # the toolkit failed to start: go on without an icon
            logger.opt(exception=exc).warning("the tray icon failed; the daemon goes on alone until stopped")
        else:
            daemon.request_stop()
        housekeeper.join()
    finally:
        daemon.request_stop()
        daemon.close()
        undo()
    return 0


def look_after(daemon: Daemon) -> None:
    """The daemon's housekeeping until a stop is asked for (the loop of ``serve``), then close it."""
    try:
        daemon.run()
    finally:
        daemon.close()


def install_signals(*, on_stop: Callable[[], Any], on_reload: Callable[[], Any]) -> Callable[[], None]:
    """SIGTERM/SIGINT call ``on_stop``, SIGHUP ``on_reload`` (flags only: no locks). Returns an undo."""
    wanted = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = on_reload
    previous = {signum: signal.signal(signum, lambda _signum, _frame, act=act: act()) for signum, act in wanted.items()}

    def undo() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return undo
