"""A file the watcher found settled (size and mtime quiet, openable, nobody writing it): queue it, or
hand a job that was waiting for it to settle back to the worker; and give it one early look.

The early look (``engine.probe.sniff``: the header only, never a file still being copied, since the
watcher hands on only settled files) fails a file that is plainly not a video now, through the same
outcome table as any job (``Worker.fail_early``), instead of when its turn comes behind a long job.
What this look cannot tell (a damaged middle, a wrong frame count) the job's full probe still finds.
In the daemon the looks run on a thread of their own (``start``): ffprobe on a slow share can take up to
its deadline, and the watcher must not stop settling other files meanwhile.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.daemon.jobs.worker import Worker
from midframe.daemon.profiles import profile_of
from midframe.daemon.store.records import JobStore
from midframe.errors import MediaError, TransientError
from midframe.fs.identity import Fingerprint, Identity
from midframe.loop_thread import QueueThread


def _sniff(path: Path, *, ffmpeg: Any) -> None:
    from midframe.engine.probe import sniff

    sniff(path, ffmpeg=ffmpeg)


class Arrivals:
    """The watcher's ``on_arrival``: called on the watcher's thread with each settled file."""

    def __init__(self, store: JobStore, worker: Worker, *, inbox: Path, ffmpeg: Any,
                 profiles: Callable[[], Mapping[str, Any]],
                 sniff: Callable[..., None] = _sniff) -> None:
        self._store = store
        self._worker = worker
        self._inbox = inbox
        self._ffmpeg = ffmpeg
        self._profiles = profiles
        self._sniff = sniff
        self._looks: queue.Queue[tuple[int, Path] | None] = queue.Queue()
        self._thread: QueueThread[tuple[int, Path]] | None = None

    def start(self) -> None:
        """Look at settled files on a thread of their own from now on (else on the caller's)."""
        self._thread = QueueThread(self._looks, lambda item: self.early_verdict(*item), name="midframe-early-look")
        self._thread.start()

    def close(self, timeout: float) -> None:
        if self._thread is not None:
            self._looks.put(None)
            self._thread.join(timeout)

    def __call__(self, path: Path, info: os.stat_result) -> None:
        store = self._store
        known = store.find(path, size=info.st_size, mtime=info.st_mtime)
        if known is not None:
            if known.state == "queued" and known.not_before is not None:
                store.resettled(known.id, size=info.st_size, mtime=info.st_mtime, fingerprint=known.fingerprint,
                                identity=Identity.of(info).text())
                self._look(known.id, path)
                self._worker.wake()
            return
        try:
            print_ = Fingerprint.of(path, size=info.st_size).text()
        except OSError as exc:
            logger.warning("{}: cannot read it ({}); skipping it until it changes", path, exc.strerror or exc)
            return
        identity = Identity.of(info).text()
        relpath = path.relative_to(self._inbox).as_posix()
        profile = profile_of(relpath, self._profiles())
        job, new = store.add_unless_queued(path, relpath=relpath, size=info.st_size, mtime=info.st_mtime,
                                           fingerprint=print_, profile=profile, identity=identity)
        if new:
            logger.info("job {} queued: {} ({:.1f} MB{})", job.id, relpath, info.st_size / 1e6,
                        f", profile {profile}" if profile else "")
        else:
            # The same job goes on with the file as it is now (a copy that went on after a stall, or a
            # file that changed while its earlier job was converted).
            store.resettled(job.id, size=info.st_size, mtime=info.st_mtime, fingerprint=print_, identity=identity)
            logger.info("job {}: {} settled again ({:.1f} MB)", job.id, job.relpath, info.st_size / 1e6)
        self._look(job.id, path)
        self._worker.wake()

    def _look(self, job_id: int, path: Path) -> None:
        if self._thread is None:
            self.early_verdict(job_id, path)
        else:
            self._looks.put((job_id, path))

    def early_verdict(self, job_id: int, path: Path) -> None:
        """One look at the header of ``path``, which just settled; a non-video's job fails now."""
        try:
            self._sniff(path, ffmpeg=self._ffmpeg)
        except MediaError as exc:
            self._worker.fail_early(job_id, exc)
        except TransientError as exc:  # ffprobe hung: the job's own probe, at its turn, tries again
            logger.warning("{}: could not look at it as it settled ({}); it is probed at its turn", path, exc)
