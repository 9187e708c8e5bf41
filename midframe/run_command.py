"""``midframe run``: the daemon, plus the tray icon where a desktop session exists.

The daemon starts as for ``midframe watch`` and the service (``host.start_daemon``). With a desktop,
the tray's toolkit loop then owns the main thread, as pystray requires (macOS most of all), and a
thread of ours runs the daemon's housekeeping (``startup.Housekeeping``) and closes the daemon once a stop is
asked for, so that "Start daemon" in the menu can bring up a new one on the same state dir.

Signals only set flags, which both loops read: SIGTERM and SIGINT quit (the tray, then the daemon
after its current batch), SIGHUP re-reads the config. Quitting from the menu stops the daemon too.
Without a desktop, or if no tray backend loads, this is ``midframe watch``; if another daemon
already holds the state dir (a service, say), this is ``midframe tray`` for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import load_config
from midframe.daemon.root import Daemon
from midframe.daemon.startup import Housekeeping, finish, serve, start_daemon
from midframe.errors import AlreadyRunning
from midframe.signals import SignalFlags, install_signals
from midframe.tray.app import TrayIcon, load_tray_toolkit, make_app
from midframe.tray.backend import TrayUnavailable


def main_job(config_path: Path | None) -> int:
    flags = SignalFlags()
    undo = install_signals(flags)
    try:
        try:
            daemon = start_daemon(config_path)
        except AlreadyRunning as exc:  # e.g. the systemd user service: be its tray
            logger.info("{}; showing the tray icon for it", exc)
            return _tray_alone(config_path, flags)
        try:
            try:
                pystray = load_tray_toolkit()
            except TrayUnavailable as exc:
                logger.info("no tray icon: {}; running the daemon alone", exc)
                serve(daemon, flags=flags)
                return 0
            app = make_app(config_path, daemon.settings.snapshot(), state_dir=daemon.paths.state_dir,
                           quit_text="Quit midframe", stop_daemon_on_quit=True)
            return run_with_tray(daemon, TrayIcon(app, pystray, stop_when=lambda: flags.stop), flags=flags)
        finally:
            finish(daemon)
    finally:
        undo()


def _tray_alone(config_path: Path | None, flags: SignalFlags) -> int:
    tray = TrayIcon(make_app(config_path, load_config(config_path)), load_tray_toolkit(),
                    stop_when=lambda: flags.stop)
    tray.run()
    return 1 if tray.failed else 0


def run_with_tray(daemon: Daemon, tray: Any, *, flags: SignalFlags) -> int:
    """Run ``tray`` on this (the main) thread beside the started ``daemon``; stop the daemon when the
    tray ends. A tray that fails to start leaves the daemon running until it is stopped."""
    housekeeper = _LookAfter(daemon, flags=flags)
    housekeeper.start()
    try:
        try:
            tray.run()
        except Exception as exc:  # the toolkit failed to start: go on without an icon
            logger.opt(exception=exc).warning("the tray icon failed; the daemon goes on alone until stopped")
        else:
            daemon.request_stop()
        housekeeper.join()
    finally:
        daemon.request_stop()
        finish(daemon)
    return 0


class _LookAfter(Housekeeping):
    """The housekeeping loop on a thread of its own beside the tray; it closes the daemon as it ends."""

    def on_thread_stop(self) -> None:
        try:
            super().on_thread_stop()
        finally:
            finish(self.served)
