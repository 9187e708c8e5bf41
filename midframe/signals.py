"""Signals as flags. A handler only assigns an attribute: no lock, no I/O, nothing that can block.

A handler runs on the main thread between two bytecodes, possibly while that thread holds a lock
(``threading.Event.set`` takes one, so does logging). So the handlers here set plain booleans, and
the loops that look after the daemon and the tray read them every fraction of a second.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType


class SignalFlags:
    """``stop`` after SIGTERM or SIGINT, ``reload`` after SIGHUP (cleared by whoever acts on it)."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False

    def take_reload(self) -> bool:
        requested, self.reload = self.reload, False
        return requested


def install_signals(flags: SignalFlags) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``flags.stop``, SIGHUP ``flags.reload``. Main thread only; returns an undo."""

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        flags.stop = True

    def on_reload(_signum: int, _frame: FrameType | None) -> None:
        flags.reload = True

    wanted = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = on_reload
    previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}

    def undo() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return undo
