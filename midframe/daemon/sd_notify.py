"""systemd's sd_notify protocol as a ``LifecycleListener``: READY, STATUS, WATCHDOG, RELOADING, STOPPING.

sd_notify is a datagram of ``KEY=VALUE`` lines sent to the Unix socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``). Nothing here raises on a lost message:
the service manager's view is a courtesy, the daemon's work is not.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from loguru import logger


class SystemdNotifier:
    """Tells systemd where the daemon stands: READY, STATUS, WATCHDOG, RELOADING, STOPPING."""

    def __init__(
        self,
        address: str,
        *,
        watchdog_usec: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_interval = watchdog_usec / 2_000_000 if watchdog_usec else 0.0
        self._monotonic = monotonic
        self._last_watchdog: float | None = None
        self._last_status: str | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier | None:
        """A notifier for ``$NOTIFY_SOCKET``, or None when the process was not started by systemd."""
        address = environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        watchdog_usec: int | None = None
        watchdog_pid = environ.get("WATCHDOG_PID")
        if watchdog_pid is None or watchdog_pid == str(os.getpid()):
            try:
                watchdog_usec = int(environ.get("WATCHDOG_USEC", "")) or None
            except ValueError:
                watchdog_usec = None
        return cls(address, watchdog_usec=watchdog_usec)

    def send(self, *lines: str) -> bool:
        """Send one message; False (and a debug log line) when it could not be delivered."""
        message = "\n".join(lines).encode("utf-8")
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.sendto(message, self._address)
            except OSError as exc:
                logger.debug("sd_notify {!r}: {}", lines, exc)
                return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    # --- LifecycleListener ---------------------------------------------------------------------

    def ready(self) -> None:
        self.send("READY=1", "STATUS=" + (self._last_status or "watching the inbox"))

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.send("STATUS=" + text)

    def heartbeat(self) -> None:
        now = self._monotonic()
        if self._last_watchdog is not None and now - self._last_watchdog < self._watchdog_interval:
            return
        self._last_watchdog = now
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the config")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping after the current batch")
