"""Failures not yet seen: a failed job stays news until a person has looked (the tray's "N failed"
line, the dashboard's "Mark seen", ``POST /failures/seen``), so that a failure in a busy queue is not
lost behind the next job's progress.

What has been seen is one time stamp in the job store (a flag, so it survives a restart): a failed job
that finished after it is unseen. A retried job is queued again, so it drops out by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from midframe.daemon.store.records import JobStore

SEEN_FLAG = "failures_seen_at"
NAMES_SHOWN = 3  # the latest unseen failures named in status (the count says how many there are)


class UnseenFailures:
    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def seen_at(self) -> float:
        value = self._store.get_flag(SEEN_FLAG)
        try:
            return float(value) if value is not None else 0.0
        except ValueError:  # a hand-edited database: everything failed is news again
            return 0.0

    def status(self) -> dict[str, Any]:
        """``failed_unseen`` (how many) and ``failed_unseen_names`` (latest first), as ``GET /events``
        and the dashboard's state carry them."""
        count, latest = self._store.failures_after(self.seen_at(), limit=NAMES_SHOWN)
        return {"failed_unseen": count, "failed_unseen_names": [job.name for job in latest]}

    def mark_seen(self) -> None:
        self._store.set_flag(SEEN_FLAG, repr(self._clock()))
