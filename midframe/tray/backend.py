"""Choosing and loading pystray's backend, and the icon class that survives a desktop without parts.

pystray picks its backend when it is imported (from ``PYSTRAY_BACKEND``), and the import itself fails
with no display (python-xlib raises ``DisplayNameError``, not an ``ImportError``). Its gtk backends
also fail at start-up with a ``GLib.Error`` when the session bus cannot be reached (the D-Bus notifier
is created before the loop runs): :class:`MidframeIcon` carries on without notifications then.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from loguru import logger

from midframe.errors import MidframeError

SNI_WATCHER = "org.kde.StatusNotifierWatcher"  # AppIndicator's host: KDE, GNOME with the extension, ...
# pystray's python-xlib backend (no PyGObject) draws the icon but cannot show a menu.
NO_MENU_ADVICE = (
    "PyGObject is not installed, so only pystray's plain X11 backend loads; install it with "
    "`sudo apt install libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0` and "
    "`pip install \"midframe[tray-linux]\"` (scripts/setup.sh does both on a desktop)"
)


class TrayUnavailable(MidframeError):
    """No tray icon can be shown here: no desktop session, or no pystray backend loads."""


def desktop_session_available(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Windows and macOS always have a desktop for a logged-in user; elsewhere an X11 or Wayland display."""
    if platform in ("win32", "darwin"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def backend_candidates(
    environ: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    *,
    has_status_notifier_host: Callable[[], bool] = lambda: session_bus_has_name(SNI_WATCHER),
) -> list[str]:
    """pystray backends to try, best first: ``PYSTRAY_BACKEND`` if set, else the platform's own."""
    chosen = environ.get("PYSTRAY_BACKEND")
    if chosen:
        return [chosen]
    if platform == "win32":
        return ["win32"]
    if platform == "darwin":
        return ["darwin"]
    if has_status_notifier_host():
        return ["appindicator", "gtk", "xorg"]
    if environ.get("DISPLAY"):
        # An X11 tray (XEmbed): GtkStatusIcon, or python-xlib where PyGObject is missing.
        return ["gtk", "xorg", "appindicator"]
    return ["appindicator", "gtk"]  # Wayland without a StatusNotifier host: nothing may show


def session_bus_has_name(name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``name`` has an owner on the D-Bus session bus; False without PyGObject or a bus.

    Without a bus address GLib would autolaunch a bus of its own, so that case is not even tried.
    """
    runtime_bus = Path(environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "bus"
    if not environ.get("DBUS_SESSION_BUS_ADDRESS") and not runtime_bus.exists():
        return False
    try:
        import gi

        gi.require_version("Gio", "2.0")
        from gi.repository import Gio, GLib
    except (ImportError, ValueError):
        return False
    try:
        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
            GLib.Variant("(s)", (name,)), GLib.VariantType("(b)"), Gio.DBusCallFlags.NONE, 2000, None,
        )
    except GLib.Error as exc:
        logger.debug("session bus: {}", exc)
        return False
    return bool(reply.unpack()[0])


def load_pystray(candidates: list[str]) -> ModuleType:
    """Import pystray with the first backend of ``candidates`` that loads; TrayUnavailable if none.

    pystray reads ``PYSTRAY_BACKEND`` while it is imported; the variable is restored afterwards.
    Once imported, the backend is fixed for this process and the module is returned as it is.
    """
    if "pystray" in sys.modules:
        return sys.modules["pystray"]
    previous = os.environ.get("PYSTRAY_BACKEND")
    failures = []
    try:
        for name in candidates:
            os.environ["PYSTRAY_BACKEND"] = name
            try:
                import pystray
            except Exception as exc:  # python-xlib raises its own DisplayNameError here
                failures.append(f"{name}: {exc}")
                continue
            logger.debug("tray backend: {}", name)
            if not getattr(pystray.Icon, "HAS_MENU", True):
                logger.warning("the tray icon has no menu: {}", NO_MENU_ADVICE)
            return pystray
    finally:
        if previous is None:
            os.environ.pop("PYSTRAY_BACKEND", None)
        else:
            os.environ["PYSTRAY_BACKEND"] = previous
    raise TrayUnavailable("no tray backend could be loaded (" + "; ".join(failures) + ")")


class _SilentNotifier:
    """Stands in for pystray's D-Bus notifier when the session bus cannot be reached."""

    def notify(self, title: str, message: str, icon: Any) -> None:
        pass

    def hide(self) -> None:
        pass


def icon_class(pystray: ModuleType) -> type:
    """pystray's Icon, extended to survive a failing D-Bus notifier and to keep our SIGINT handler."""

    class MidframeIcon(pystray.Icon):  # type: ignore[name-defined]
        notifications_work = bool(getattr(pystray.Icon, "HAS_NOTIFICATION", False))
        _saved_sigint: Any = None

        def run(self, setup: Callable[[Any], None] | None = None) -> None:
            if threading.current_thread() is threading.main_thread():
                handler = signal.getsignal(signal.SIGINT)
                if callable(handler) and handler is not signal.default_int_handler:
                    self._saved_sigint = handler
            super().run(setup)

        def _initialize(self) -> None:  # gtk and appindicator backends only
            from gi.repository import GLib

            try:
                super()._initialize()
            except GLib.Error as exc:
                logger.warning("no notifications from the tray: the session bus cannot be reached ({})", exc)
                self.notifications_work = False
                self._notifier = _SilentNotifier()
                self._mark_ready()

        def _mark_ready(self) -> None:
            # The gtk backends set SIGINT to SIG_DFL just before this; `midframe run` needs its own.
            if self._saved_sigint is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, self._saved_sigint)
            super()._mark_ready()

    return MidframeIcon
