"""Desktop bubbles over D-Bus (``gdbus`` or ``notify-send``): shown, replaced and closed by id, off the
caller's thread. Used by the daemon when no tray is attached and by the tray itself."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from midframe.loop_thread import QueueThread

STICKY_KINDS = frozenset({"done", "failed"})  # bubbles that later ones do not close or replace
CRITICAL_KINDS = frozenset({"failed"})  # bubbles that stay until the person closes them
BUBBLE_TIMEOUT_MS = 8000


@dataclass(frozen=True)
class _Bubble:
    title: str
    body: str
    due: float  # monotonic time before which it is not sent
    still_wanted: Callable[[], bool]
    kind: str = "progress"


class DesktopNotifier:
    """Desktop bubbles through ``gdbus`` (or ``notify-send``), sent from a thread of its own so a slow
    or absent notification server never holds up a job. Passing bubbles (started, progress...) are on
    screen one at a time: each new one closes the passing one before, which the desktop keeps in its
    history. A done or failed bubble (``STICKY_KINDS``) also closes the passing one before it, but
    nothing closes it: it stays for its time-out, a failed one (``CRITICAL_KINDS``) until clicked."""

    def __init__(self, command: str, *, timeout_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self._monotonic = monotonic
        self._queue: queue.Queue[_Bubble | None] = queue.Queue(maxsize=100)
        self._thread: QueueThread[_Bubble] | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._failed = False
        self.shown_ids: list[int] = []  # every id the server gave, in order
        self._passing = 0  # the id of the passing bubble that the next bubble closes (0: none)

    @classmethod
    def detect(cls, environ: dict[str, str] | None = None) -> DesktopNotifier | None:
        """A notifier when a session bus and a client for it exist, else None."""
        environ = dict(os.environ if environ is None else environ)
        if not environ.get("DBUS_SESSION_BUS_ADDRESS"):
            return None
        for name in ("gdbus", "notify-send"):
            found = shutil.which(name)
            if found:
                return cls(found)
        return None

    @property
    def uses_gdbus(self) -> bool:
        return os.path.basename(self.command).startswith("gdbus")

    def send(self, title: str, body: str, *, kind: str = "progress", after_s: float = 0.0,
             still_wanted: Callable[[], bool] = lambda: True) -> None:
        """Queue a bubble about an event of ``kind``; with ``after_s``, it waits that long and is sent
        only if ``still_wanted()``."""
        with self._lock:
            if self._thread is None:
                self._closing.clear()
                # Not a daemon thread: the last bubbles (a job failed just before the stop) go out.
                self._thread = QueueThread(self._queue, self._send, name="midframe-notify", daemon=False)
                self._thread.start()
        try:
            self._queue.put_nowait(_Bubble(title, body, self._monotonic() + after_s, still_wanted, kind))
        except queue.Full:
            logger.debug("desktop notifications are backed up; dropping {!r}", title)

    def close(self) -> None:
        """Send what is queued (waiting bubbles without their wait), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._closing.set()
            self._queue.put(None)
            thread.join(timeout=self.timeout_s * 3 + 1)

    def _send(self, bubble: _Bubble) -> None:
        wait = bubble.due - self._monotonic()
        if wait > 0:
            self._closing.wait(wait)
        if bubble.still_wanted():
            self._show(bubble.title, bubble.body, bubble.kind)

    def _show(self, title: str, body: str, kind: str = "progress") -> None:
        previous = self._passing
        critical = kind in CRITICAL_KINDS
        if previous and self.uses_gdbus:
            self._call(["call", "--session", "--dest", "org.freedesktop.Notifications",
                        "--object-path", "/org/freedesktop/Notifications",
                        "--method", "org.freedesktop.Notifications.CloseNotification", str(previous)])
        if self.uses_gdbus:
            args = ["call", "--session", "--dest", "org.freedesktop.Notifications",
                    "--object-path", "/org/freedesktop/Notifications",
                    "--method", "org.freedesktop.Notifications.Notify",
                    "midframe", "0", "video-x-generic", title, body, "[]",
                    "{'urgency': <byte 2>}" if critical else "{}", "0" if critical else str(BUBBLE_TIMEOUT_MS)]
        else:  # notify-send cannot close a bubble: replace the last passing one instead
            args = ["--app-name=midframe", "--print-id", *([f"--replace-id={previous}"] if previous else []),
                    *(["--urgency=critical", "--expire-time=0"] if critical else []), title, body]
        answer = self._call(args)
        found = notification_id(answer) if answer is not None else None
        if found:
            self.shown_ids.append(found)
        self._passing = 0 if kind in STICKY_KINDS else (found or 0)

    def _call(self, args: list[str]) -> str | None:
        done: subprocess.CompletedProcess[str] | None
        try:
            done = subprocess.run([self.command, *args], capture_output=True, text=True, timeout=self.timeout_s,
                                  check=False)
            reason = done.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            done, reason = None, str(exc)
        if done is None or done.returncode != 0:
            if not self._failed:
                logger.info("desktop notifications unavailable ({}); logging only", reason or "no server")
            self._failed = True
            return None
        self._failed = False
        return done.stdout


def notification_id(answer: str) -> int | None:
    """The id in gdbus's ``(uint32 7,)`` or notify-send's ``7``."""
    found = re.search(r"uint32 (\d+)", answer) or re.fullmatch(r"\s*(\d+)\s*", answer)
    return int(found.group(1)) if found else None
