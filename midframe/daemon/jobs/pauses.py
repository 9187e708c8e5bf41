"""Why the worker is paused: one entry per reason, each knowing how to tell that it is over.

A person's pause (``midframe pause``) is kept in the store, so it survives a restart, and only
``midframe resume`` lifts it. Every other pause (a setting this machine cannot honour, a folder that
cannot be written, a disk too full) carries a ``recheck``: called with the config in force when the
config changes and every ``recheck_s`` (its own, for a cheap check such as a write test, or the
default), it returns the problem if it is still there (reworded if it changed) or None once it is
gone, and then the pause lifts by itself. Those pauses are not stored:
at the next start the same checks find the same problems again.

To add a kind of pause, add a :class:`Pause` with its own ``name`` and ``recheck``; nothing else here
needs to change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from midframe.config import Config
from midframe.daemon.store.records import JobStore

FLAG = "paused"
USER = "user"
SETTINGS, DISK, FARM = "settings", "disk", "farm"  # the names of the daemon's own pauses
STORE = "store"                      # the job database cannot be written
FOLDER = "folder"                    # + " <config key>": a folder that cannot be written
USER_REASON = "paused on request; `midframe resume` continues"
RECHECK_S = 15.0
QUICK_RECHECK_S = 2.0                # a write test or a look at free space: cheap enough to repeat often

Recheck = Callable[[Config], str | None]


@dataclass(frozen=True)
class Pause:
    name: str                       # one pause per name: "settings", "disk", "output"...
    reason: str                     # the sentence ``status --json`` shows as ``paused_reason``
    recheck: Recheck | None = None  # None: only ``midframe resume`` lifts it
    recheck_s: float | None = None  # how often; None: the default (``Pauses.recheck_s``)


class Pauses:
    """The reasons in force. Thread-safe; a recheck runs outside the lock and one at a time."""

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.monotonic,
                 recheck_s: float = RECHECK_S) -> None:
        self._store = store
        self._clock = clock
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._automatic: dict[str, Pause] = {}
        self._checked_at: dict[str, float] = {}   # pause name -> when it was last looked at
        self._checked_config: Config | None = None
        if store.get_flag(FLAG) not in (None, USER):
            # An older midframe stored its automatic pauses too; the checks find them again now.
            store.set_flag(FLAG, None)

    @property
    def user(self) -> bool:
        return self._store.get_flag(FLAG) == USER

    def set_user(self, on: bool) -> bool:
        """Set or clear the person's pause; whether that changed anything."""
        if self.user == on:
            return False
        self._store.set_flag(FLAG, USER if on else None)
        return True

    def active(self) -> list[Pause]:
        with self._lock:
            automatic = list(self._automatic.values())
        return ([Pause(USER, USER_REASON)] if self.user else []) + automatic

    def get(self, name: str) -> Pause | None:
        with self._lock:
            return self._automatic.get(name)

    @property
    def reason(self) -> str | None:
        """All reasons in one sentence, the person's first; None when not paused."""
        reasons = [pause.reason for pause in self.active()]
        return "; and ".join(reasons) if reasons else None

    def add(self, pause: Pause) -> bool:
        """Pause for ``pause.name`` (replacing an earlier one of that name); whether it is news."""
        with self._lock:
            earlier = self._automatic.get(pause.name)
            self._automatic[pause.name] = pause
            self._checked_at.setdefault(pause.name, self._clock())
        return earlier is None or earlier.reason != pause.reason

    def remove(self, name: str) -> bool:
        with self._lock:
            self._checked_at.pop(name, None)
            return self._automatic.pop(name, None) is not None

    def _due(self, pause: Pause, now: float) -> bool:
        every = self.recheck_s if pause.recheck_s is None else pause.recheck_s
        return now - self._checked_at.get(pause.name, float("-inf")) >= every

    def recheck(self, config: Config, *, force: bool = False) -> list[Pause]:
        """Ask each automatic pause whether its problem is gone, when the config changed, when its
        ``recheck_s`` has passed or when ``force``d; returns the pauses that lifted."""
        with self._lock:
            if not self._automatic:
                return []
            now = self._clock()
            every = force or config is not self._checked_config
            pending = [pause for pause in self._automatic.values()
                       if pause.recheck is not None and (every or self._due(pause, now))]
            self._checked_config = config
            if not pending:
                return []
        lifted = []
        with self._checking:
            for pause in pending:
                still = pause.recheck(config)  # type: ignore[misc]
                with self._lock:
                    self._checked_at[pause.name] = self._clock()
                    if self._automatic.get(pause.name) is not pause:
                        continue  # replaced or removed meanwhile
                    if still is None:
                        del self._automatic[pause.name]
                        del self._checked_at[pause.name]
                        lifted.append(pause)
                    elif still != pause.reason:
                        self._automatic[pause.name] = Pause(pause.name, still, pause.recheck, pause.recheck_s)
        return lifted
