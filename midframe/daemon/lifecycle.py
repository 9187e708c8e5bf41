"""How the daemon tells a service manager where it stands (systemd's sd_notify, Windows SCM)."""

from __future__ import annotations

from typing import Protocol


class LifecycleListener(Protocol):
    def ready(self) -> None:
        """The watcher and the control API are up."""

    def status(self, text: str) -> None:
        """One line on what the daemon does now, e.g. ``working: a.mp4 42% ETA 3m``."""

    def heartbeat(self) -> None:
        """Called every few seconds while the daemon's main loop is alive."""

    def reloading(self) -> None:
        """The config is being re-read (SIGHUP); ``ready()`` follows when done."""

    def stopping(self) -> None:
        """Shutdown has begun."""


class NoLifecycle:
    """A listener that ignores everything: the daemon run by hand."""

    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def heartbeat(self) -> None:
        pass

    def reloading(self) -> None:
        pass

    def stopping(self) -> None:
        pass
