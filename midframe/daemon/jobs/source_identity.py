"""Is the job's source still the file it started on? Checked between batches, right before the join
(which reads the source's audio) and right before publishing.

A job remembers its source's identity (``Identity``: device, inode, size, mtime, ctime) when
the watcher settles it, and again from the open file while the whole file is hashed (the hash that
duplicates are told by). A file replaced by another, grown (a recording still going), shrunk or
rewritten raises :class:`~midframe.errors.SourceChanged`, which the outcome table turns into
"changed": what was made is discarded and the file as it is now becomes a new job. Between batches
only the cheap ``stat`` is compared; before publishing, a file whose only change is its ctime (a
chmod, a new hard link, or a rewrite that put the mtime back) is hashed again and compared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from midframe.daemon.store.records import Job
from midframe.engine import Children, JobControl
from midframe.errors import SourceChanged
from midframe.fs.identity import Content, Identity, read_content

Change = Callable[[Job, os.stat_result], "str | None"]


class SourceGuard:
    """The identity checks of one job (``job`` as it was once hashed)."""

    def __init__(self, job: Job, *, change: Change, stat: Callable[[Path], os.stat_result] = os.stat,
                 read: Callable[[Path], Content] = read_content) -> None:
        self.job = job
        self.path = Path(job.path)
        self._change = change
        self._stat = stat
        self._read = read

    def check(self, *, rehash: bool = False) -> None:
        """Raise ``SourceChanged`` unless the file is still the job's source. With ``rehash``, a file whose
        ctime moved is read again and must have the same SHA-256."""
        try:
            info = self._stat(self.path)
        except FileNotFoundError:
            raise SourceChanged(self.path, "is gone") from None
        change = self._change(self.job, info)
        if change is not None:
            raise SourceChanged(self.path, change)
        then = Identity.parse(self.job.identity)
        if not rehash or then is None or Identity.of(info).ctime_ns == then.ctime_ns:
            return
        content = self._read(self.path)
        if not content.steady or content.sha256 != self.job.sha256:
            raise SourceChanged(self.path, "was rewritten")


class GuardedControl(JobControl):
    """The pipeline's pause/abort flags, with the source's identity checked at every checkpoint: between
    batches and right before the join reads the source's audio."""

    def __init__(self, guard: SourceGuard, *, children: Children | None = None) -> None:
        super().__init__(children=children)
        self.guard = guard

    def checkpoint(self, *, poll_s: float = 0.5) -> None:
        super().checkpoint(poll_s=poll_s)
        self.guard.check()
