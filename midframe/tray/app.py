"""The tray icon: a client of the daemon's control API, with no business logic of its own.

One thread (pystray's setup thread) does all the talking to the daemon: it polls ``status`` and
``events`` (as client "tray", so the daemon leaves notifications to us; see ``daemon.notify``), runs
the menu's actions, and updates the picture, tooltip and menu. The toolkit's loop owns the main
thread; menu callbacks only queue an action and wake the poller, so a slow daemon never freezes the
menu. The daemon is found like the CLI finds it (``daemon.locate``), so a broken config file does
not cut the tray off from a daemon still running on the last good one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from loguru import logger

from midframe.config import Config, Paths, load_config, resolve_paths
from midframe.desktop_bubbles import DesktopNotifier
from midframe.errors import ConfigError, ControlError
from midframe.log import LOG_FILE_NAME, configure_logging
from midframe.signals import SignalFlags, install_signals
from midframe.tray import desktop
from midframe.tray.backend import (
    TrayUnavailable,
    backend_candidates,
    desktop_session_available,
    icon_class,
    load_pystray,
)
from midframe.tray.menu import Action, Entry, build_menu, menu_entries
from midframe.tray.view import TrayView, offline_view, picture, view_from_status

POLL_SECONDS = 1.0
START_GRACE_SECONDS = 30.0  # how long "Starting daemon…" shows before the icon says it failed
EVENT_SLACK_SECONDS = 5.0  # events this much older than the tray's start are still shown


@dataclass(frozen=True)
class Notification:
    kind: str
    title: str
    body: str


class TrayApp:
    """The tray's state and behaviour, free of any toolkit: tests drive ``poll_once`` and ``act``."""

    def __init__(
        self,
        *,
        connect: Callable[[], Any],
        paths: Paths,
        config_path: Path | None,
        quit_text: str = "Quit tray",
        stop_daemon_on_quit: bool = False,
        spawn: Callable[[Path | None], Any] | None = None,
        opener: Callable[[Path], None] = desktop.open_path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self._paths = paths
        self._config_path = config_path
        self.quit_text = quit_text
        self.stop_daemon_on_quit = stop_daemon_on_quit
        self._spawn = spawn or (lambda path: desktop.spawn_daemon(path, log_dir=paths.log_dir))
        self._opener = opener
        self._clock = clock
        self._client: Any = None
        self._after = 0
        self._since = clock() - EVENT_SLACK_SECONDS
        self._starting_until = 0.0
        self.start_error: str | None = None  # why the daemon the menu started did not stay up
        self._children: list[Any] = []
        self._actions: queue.SimpleQueue[Action] = queue.SimpleQueue()
        self.wake = threading.Event()
        self.quit_requested = threading.Event()
        self.view: TrayView = offline_view()
        self._status: dict[str, Any] = {}  # the daemon's last status answer

    # --- talking to the daemon -----------------------------------------------------------------

    def poll_once(self) -> list[Notification]:
        """Run queued actions, then read status and new events; returns what to show as notifications."""
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                break
            self.act(action)
        client = self._client_or_none()
        if client is None:
            return self._offline()
        try:
            status = client.status()
            events = client.events(self._after, client="tray")
        except ControlError as exc:
            logger.debug("daemon not answering: {}", exc)
            self._client = None
            return self._offline()
        self._starting_until = 0.0
        self.start_error = None
        self._status = status
        self.view = view_from_status(status, events)
        return self._new_notifications(events)

    def _client_or_none(self) -> Any:
        if self._client is None:
            try:
                self._client = self._connect()
            except ControlError:
                return None
        return self._client

    def _offline(self) -> list[Notification]:
        """The offline view; a notification when a daemon the menu started has exited instead."""
        shown = []
        for child in list(self._children):  # reap daemons we started that have exited
            code = child.poll()
            if code is None:
                continue
            self._children.remove(child)
            if code != 0:
                self.start_error = child.reason()
                self._starting_until = 0.0
                logger.warning("the daemon did not start: {}", self.start_error)
                shown.append(Notification("failed", "midframe: the daemon did not start", self.start_error))
        if self._clock() < self._starting_until:
            self.view = TrayView("offline", "Starting daemon…", "midframe: starting the daemon…")
        elif self.start_error:
            self.view = offline_view(self.start_error, line="Start failed: " + self.start_error)
        else:
            self.view = offline_view()
        return shown

    def _new_notifications(self, answer: dict[str, Any]) -> list[Notification]:
        last = int(answer.get("last", 0))
        if last < self._after:  # numbers start at the daemon's wall clock: one restarted after it went back
            self._after = 0
            return []
        shown = []
        for event in answer.get("events", []):
            if int(event["seq"]) <= self._after or float(event.get("time") or 0) < self._since:
                continue
            if event.get("shown"):  # the daemon showed it itself, before this tray attached
                continue
            shown.append(Notification(event["kind"], event.get("title") or "midframe", event.get("body") or ""))
        self._after = max(last, self._after)
        return shown

    # --- the menu's actions --------------------------------------------------------------------

    def request(self, action: Action) -> None:
        """Called by the toolkit's thread: queue ``action`` for the poller and wake it."""
        if action == "quit":
            self.quit_requested.set()
        else:
            self._actions.put(action)
        self.wake.set()

    def act(self, action: Action) -> None:
        """Carry out one menu action (on the poller's thread)."""
        logger.debug("tray action: {}", action)
        if action in ("open_inbox", "open_outbox", "open_log"):
            self._open(action)
        elif action == "open_failed":
            self._open_failed()
        elif action == "start_daemon":
            self.start_error = None
            try:
                self._children.append(self._spawn(self._config_path))
            except OSError as exc:
                self.start_error = f"cannot run midframe: {exc.strerror or exc}"
                return
            self._starting_until = self._clock() + START_GRACE_SECONDS
        elif action in ("pause", "resume", "stop_daemon"):
            client = self._client_or_none()
            if client is None:
                return
            try:
                getattr(client, "stop" if action == "stop_daemon" else action)()
            except ControlError as exc:
                logger.warning("{} failed: {}", action, exc)
                self._client = None

    def _open(self, action: Action) -> None:
        folder = {"open_inbox": self._paths.inbox, "open_outbox": self._paths.outbox}.get(action, self._paths.log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        log_file = folder / LOG_FILE_NAME
        self._opener(log_file if action == "open_log" and log_file.exists() else folder)

    def _open_failed(self) -> None:
        """The failures line: show failed/ (the files and their .error.txt), and they count as seen."""
        self._paths.failed_dir.mkdir(parents=True, exist_ok=True)
        self._opener(self._paths.failed_dir)
        client = self._client_or_none()
        if client is None:
            return
        try:
            self.view = view_from_status(self._status, client.failures_seen())
        except ControlError as exc:
            logger.warning("marking the failures seen failed: {}", exc)
            self._client = None

    def finish(self) -> None:
        """On quit: stop the daemon too when this tray is the face of ``midframe run``."""
        if not self.stop_daemon_on_quit:
            return
        client = self._client_or_none()
        if client is not None:
            try:
                client.stop()
            except ControlError as exc:
                logger.debug("stop on quit: {}", exc)

    def menu(self) -> list[Entry | None]:
        return menu_entries(self.view, quit_text=self.quit_text)


class TrayIcon:
    """Binds a :class:`TrayApp` to a pystray icon; ``run`` blocks the main thread until Quit."""

    def __init__(self, app: TrayApp, pystray: ModuleType, *, poll_s: float = POLL_SECONDS,
                 stop_when: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self._pystray = pystray
        self._poll_s = poll_s
        self._stop_when = stop_when  # e.g. a signal flag: read here, since a handler only sets it
        self._shown_key: Any = None
        self._shown_menu: list[Entry | None] | None = None
        self._desktop: DesktopNotifier | None = None
        self._desktop_chosen = False
        self.failed = False
        view = app.view
        self.icon = icon_class(pystray)(
            "midframe", picture(view), view.tooltip, self._menu(app.menu())
        )

    def run(self) -> None:
        """Blocks until Quit (or ``stop``); raises what the toolkit raised, if it failed to start."""
        self.icon.run(self._loop)

    def stop(self) -> None:
        """Ask the loop to end, from any thread (a signal handler included)."""
        self.app.quit_requested.set()
        self.app.wake.set()

    def _menu(self, entries: list[Entry | None]) -> Any:
        self._shown_menu = entries
        return build_menu(self._pystray, entries, self.app.request)

    def _loop(self, icon: Any) -> None:
        icon.visible = True
        try:
            while not self.app.quit_requested.is_set() and not self._stop_when():
                notifications = self.app.poll_once()
                self._show(self.app.view)
                for notification in notifications:
                    self._notify(notification)
                self.app.wake.wait(self._poll_s)
                self.app.wake.clear()
            self.app.finish()
            if self._desktop is not None:
                self._desktop.close()
        except Exception:
            self.failed = True
            logger.exception("the tray's poller failed")
        finally:
            icon.stop()

    def _show(self, view: TrayView) -> None:
        if view.icon_key != self._shown_key:
            self.icon.icon = picture(view)
            self._shown_key = view.icon_key
        self.icon.title = view.tooltip
        entries = self.app.menu()
        if entries != self._shown_menu:
            self.icon.menu = self._menu(entries)

    def _notify(self, notification: Notification) -> None:
        # Where a session bus and gdbus exist, the daemon's own sender: it logs a failure, where
        # pystray's notifier drops it silently inside its main-loop callback.
        if not self._desktop_chosen:
            self._desktop = DesktopNotifier.detect()
            self._desktop_chosen = True
        if self._desktop is not None:
            self._desktop.send(notification.title, notification.body, kind=notification.kind)
        elif self.icon.notifications_work and self.icon.HAS_NOTIFICATION:
            # A fresh bubble each time (not a replacement), so the desktop's history keeps them all.
            self.icon.remove_notification()
            self.icon.notify(notification.body, notification.title)
        else:
            logger.info("{}: {}", notification.title, notification.body)


def load_tray_toolkit() -> ModuleType:
    """pystray with the right backend for this desktop; TrayUnavailable where there is none."""
    if not desktop_session_available():
        raise TrayUnavailable("no desktop session (neither DISPLAY nor WAYLAND_DISPLAY is set)")
    return load_pystray(backend_candidates())


def make_app(config_path: Path | None, config: Config, *, state_dir: Path | None = None, **options: Any) -> TrayApp:
    """A TrayApp for ``config``'s folders that talks to the daemon on ``state_dir`` (``midframe run``: its
    own), else to the one ``locate`` finds at each (re)connection."""
    from midframe.api import locate
    from midframe.api.client import ControlClient

    def connect() -> ControlClient:
        found = state_dir
        if found is None:
            location = locate.locate_state_dir(config_path, pointer=locate.pointer_path())
            if location.note:
                logger.debug("{}", location.note)
            found = location.state_dir
        return ControlClient.from_state_dir(found)

    return TrayApp(connect=connect, paths=resolve_paths(config), config_path=config_path, **options)


def main(config_path: Path | None) -> int:
    """``midframe tray``: the icon for a daemon running elsewhere (service, other process)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:  # the daemon may still run on the last good one: be its tray
        config = Config()
        configure_logging(level=config.logging.level)
        logger.warning("{}; the menu's folders are the defaults until the config is fixed", exc)
    else:
        configure_logging(level=config.logging.level)
    pystray = load_tray_toolkit()
    flags = SignalFlags()
    undo = install_signals(flags)  # SIGTERM and Ctrl-C quit the tray after its current poll
    try:
        tray = TrayIcon(make_app(config_path, config), pystray, stop_when=lambda: flags.stop)
        tray.run()
    finally:
        undo()
    return 1 if tray.failed else 0
