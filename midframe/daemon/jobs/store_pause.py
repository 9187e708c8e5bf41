"""What the daemon does when its own records cannot be written or their file goes away.

``store_pause``: the worker's pause for a job database the disk refuses (``StoreUnwritable``), worded
by the outcome table as for any folder (``daemon.state_dir (...): the disk is full; ...``), lifted once
a write test in the database works and its disk has a little room. ``StoreFileWatch``: the
housekeeping loop's look at the database's file, which is written back from the open database when
it was deleted or replaced (``SqliteJobStore.keep_file``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from midframe.config import Config, Paths
from midframe.daemon.jobs.outcomes import setting_outcome
from midframe.daemon.jobs.pauses import QUICK_RECHECK_S, STORE, Pause
from midframe.daemon.jobs.routes import SPACE_MARGIN
from midframe.daemon.jobs.settings_check import folders_of
from midframe.daemon.store.records import JobStore
from midframe.daemon.store.sqlite import SqliteJobStore
from midframe.errors import StoreUnwritable

WRITE_TEST_FLAG = "write-test"


def store_reason(error: StoreUnwritable, paths: Paths) -> str:
    outcome = setting_outcome(error, folders=folders_of(paths))
    if outcome is not None:
        return outcome.text
    return (f"daemon.state_dir ({paths.state_dir}): the job database cannot be written ({error.strerror}); "
            "midframe resumes by itself once it can")


def store_pause(error: StoreUnwritable, *, paths: Paths, store: JobStore,
                free_bytes: Callable[[Path], int]) -> Pause:
    reason = store_reason(error, paths)

    def recheck(config: Config) -> str | None:
        try:
            if free_bytes(paths.state_dir) < SPACE_MARGIN:
                return reason
            store.set_flag(WRITE_TEST_FLAG, "1")
            store.set_flag(WRITE_TEST_FLAG, None)
        except StoreUnwritable as exc:
            return store_reason(exc, paths)
        except OSError:
            return reason
        return None

    return Pause(STORE, reason, recheck, QUICK_RECHECK_S)


class StoreFileWatch:
    """``check()`` from the housekeeping loop: a job database deleted or replaced while the daemon runs
    is written back, so the jobs on record, and the next start, keep everything the daemon knows."""

    def __init__(self, store: JobStore, *, warn: Callable[[str], None]) -> None:
        self._store = store
        self._warn = warn
        self._trouble = False

    def check(self) -> None:
        store = self._store
        if not isinstance(store, SqliteJobStore):  # an in-memory store has no file to lose
            return
        try:
            happened = store.keep_file()
        except (OSError, sqlite3.Error) as exc:
            if not self._trouble:
                logger.error("the job database {} is gone and cannot be written back yet ({}); trying again",
                             store.path, exc)
            self._trouble = True
            return
        self._trouble = False
        if happened:
            logger.warning("the job database {} was {} while the daemon ran; the daemon's own copy is back in "
                           "its place, so nothing on record is lost", store.path, happened)
            self._warn(f"the job database was {happened}; midframe wrote its own copy back")
