"""Where a job's files end up: the output into the outbox, the source into done or failed.

Every step is ordered so that a crash at any point either repeats it at the next start or finds it
done (:meth:`Finisher.recover_moves`). Names always come from the name a file had when it arrived,
so a retried job never turns ``a.mp4`` into ``a (2).mp4``, in failed/ or in its output's name; a
source is deleted (``on_success: delete``) only when its output is in the outbox and the file is
still the one that output was made from.

A source that cannot be moved into done_dir or failed_dir (that disk full, say) stays where it is, with
one log line; the job's outcome is on record all the same, and the move is tried again later
(``moves_pending``, :meth:`Finisher.recover_moves`), at start-up too: a full disk never stops a start.

A duplicate (same content, same settings) gets the earlier job's output only when that output still
reads back as the video it was (:meth:`Finisher.reusable`): there, not modified since, probed whole,
with the frames the job made. Anything else (gone, damaged, replaced) means a conversion of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import Config, Paths
from midframe.daemon.jobs.naming import error_text, output_name
from midframe.daemon.store.records import Job, JobStore
from midframe.engine import PipelineReport
from midframe.errors import MediaError
from midframe.fs.folders import remove_tree
from midframe.fs.identity import Identity, identity_change
from midframe.fs.names import WORK_DIR_NAME, name_limit
from midframe.fs.publish import find_link, link_or_copy, move_no_clobber
from midframe.fs.safe_write import atomic_write

ERROR_SUFFIX = ".error.txt"
# An output's mtime may trail the job's finishing time this much (a share's clock) and still count
# as untouched since.
MODIFIED_SLACK_S = 2.0


@dataclass(frozen=True)
class ReadBack:
    """What probing a finished output found."""

    fps: Fraction
    frames: int


class Finisher:
    def __init__(self, store: JobStore, paths: Paths, *, ffmpeg: Any,
                 read_back: Callable[[Path], ReadBack] | None = None) -> None:
        self.store = store
        self.paths = paths
        self.work_root = paths.outbox / WORK_DIR_NAME
        self._ffmpeg = ffmpeg
        self._read_back = read_back or self._probe
        self.moves_pending = False  # a source's move failed: recover_moves is worth calling again
        self._unmoved: set[int] = set()  # jobs whose failed move was said in the log

    def work_dir(self, job_id: int) -> Path:
        return self.work_root / f"job-{job_id}"

    def staged_name(self, job: Job, extension: str) -> Path:
        return self.work_root / f"job-{job.id}-result{extension}"

    def remove_work(self, job: Job) -> None:
        remove_tree(self.work_dir(job.id))
        if job.staged:
            Path(job.staged).unlink(missing_ok=True)

    # --- names ---------------------------------------------------------------------------------

    def _probe(self, path: Path) -> ReadBack:
        from midframe.engine.probe import probe

        info = probe(path, ffmpeg=self._ffmpeg)
        return ReadBack(info.fps, info.frame_count)

    def output_name(self, job: Job, made: Path, report: PipelineReport | ReadBack | None, config: Config) -> str:
        """The name ``output.name`` gives the job's source as it arrived (``{stem}.{fps}fps{ext}``);
        without a report (a result left by a crash) ``made`` is read back for its rate."""
        if report is None:
            report = self._read_back(made)
        fps_out: Fraction | str = report.fps_out if isinstance(report, PipelineReport) else report.fps
        engine = report.engine if isinstance(report, PipelineReport) else config.engine.name
        factor = config.engine.factor if config.engine.target_fps is None else "x"
        # ext: the container the file really has (the plan may have chosen mkv for container: null).
        return output_name(Path(job.name), output=config.output, fps_out=fps_out, factor=factor, engine=engine,
                           limit=name_limit(self.output_folder(job)), ext=made.suffix)

    def output_folder(self, job: Job) -> Path:
        return self.paths.outbox / Path(job.relpath).parent

    # --- done ----------------------------------------------------------------------------------

    def publish(self, job: Job, staged: Path, report: PipelineReport | None, config: Config) -> Path:
        """Give the finished ``staged`` its name in the outbox (never overwriting), record the job
        done, then retire the source."""
        name = self.output_name(job, staged, report, config)
        folder = self.output_folder(job)
        final = find_link(staged, folder, name) or move_no_clobber(staged, folder, name, keep=True)
        self.store.finish(job.id, "done", output=str(final))
        staged.unlink(missing_ok=True)
        self.dispose_source(self.store.get(job.id) or job, config)
        return final

    def reusable(self, earlier: Job) -> ReadBack:
        """The earlier job's output as it reads back now; ``MediaError`` naming it when it cannot stand
        for a new job's: gone, modified after the job made it, not readable whole, or not the frames
        the job made."""
        made = Path(earlier.output or "")
        try:
            info = made.stat()
        except OSError as exc:
            raise MediaError(made, f"is gone ({exc.strerror or exc})") from None
        if earlier.finished_at is not None and info.st_mtime > earlier.finished_at + MODIFIED_SLACK_S:
            raise MediaError(made, f"was modified after job {earlier.id} made it")
        read = self._read_back(made)
        if earlier.frames_total and read.frames != earlier.frames_total:
            raise MediaError(made, f"has {read.frames} frames, not the {earlier.frames_total} job {earlier.id} made")
        return read

    def publish_copy(self, job: Job, earlier: Job, read: ReadBack, config: Config) -> Path:
        """A duplicate: the earlier job's output (``read``: as :meth:`reusable` found it), under this
        job's own name (a hard link or a copy)."""
        made = Path(earlier.output or "")
        name = self.output_name(job, made, read, config)
        folder = self.output_folder(job)
        final = find_link(made, folder, name) or link_or_copy(made, folder, name)
        self.store.set_progress(job.id, frames_done=read.frames, frames_total=read.frames)
        self.store.finish(job.id, "done", output=str(final), duplicate_of=earlier.id)
        self.dispose_source(self.store.get(job.id) or job, config)
        return final

    @staticmethod
    def source_change(job: Job, info: os.stat_result) -> str | None:
        """How the file ``info`` describes differs from the job's source as it settled (or as it was
        hashed), in words; None if it is the same file, unchanged (its ctime aside: see
        ``Identity``)."""
        then = Identity.parse(job.identity)
        now = Identity.of(info)
        if then is None:  # a job from before identities were recorded: size and mtime
            return None if (info.st_size, info.st_mtime) == (job.size, job.mtime) else "was modified"
        return identity_change(then, now)

    def still_the_source(self, job: Job) -> bool:
        """Whether the file at ``job.path`` is still the one the job settled on."""
        try:
            info = os.stat(job.path)
        except OSError:
            return False
        return self.source_change(job, info) is None

    def dispose_source(self, job: Job, config: Config) -> None:
        source = Path(job.path)
        if config.daemon.on_success == "keep" or not source.exists():
            return
        if config.daemon.on_success == "delete":
            if job.output and Path(job.output).exists() and self.still_the_source(job):
                source.unlink()
                logger.info("job {}: deleted the source {}", job.id, source)
            else:
                logger.warning("job {}: not deleting {}: it is no longer the file its output was made from",
                               job.id, source)
            return
        try:
            target = move_no_clobber(source, self.paths.done_dir / Path(job.relpath).parent, Path(job.name).name)
        except OSError as exc:
            self._move_failed(job, "daemon.done_dir", self.paths.done_dir, exc)
            return
        self._moved(job, target)

    def _move_failed(self, job: Job, key: str, folder: Path, error: OSError) -> None:
        """One line per job, however often the move is tried again."""
        self.moves_pending = True
        said = logger.debug if job.id in self._unmoved else logger.warning
        self._unmoved.add(job.id)
        said("job {}: cannot move {} into {} ({}): {}; it stays where it is, and the move is tried again later",
             job.id, job.path, key, folder, error.strerror or error)

    def _moved(self, job: Job, target: Path) -> None:
        self.store.set_path(job.id, str(target))
        if job.id in self._unmoved:
            self._unmoved.discard(job.id)
            logger.info("job {}: moved {} to {} at last", job.id, job.path, target)

    # --- failed --------------------------------------------------------------------------------

    def fail(self, job: Job, *, problem: str, advice: str, config: Config) -> Job:
        """Record the job failed, then move the source to failed_dir with its error file."""
        self.remove_work(job)
        job = self.store.finish(job.id, "failed", error=problem)
        self.move_to_failed(job, config, advice=advice)
        return self.store.get(job.id) or job

    def move_to_failed(self, job: Job, config: Config, *, advice: str = "") -> None:
        source = Path(job.path)
        if not source.exists():
            return
        folder = self.paths.failed_dir / Path(job.relpath).parent
        if source.parent == folder:
            target = source  # a retried job that failed again stays where it is, under its name
        else:
            try:
                # Shortened if need be so that its error file's name fits beside it too.
                target = move_no_clobber(source, folder, Path(job.name).name, room=len(ERROR_SUFFIX))
            except OSError as exc:
                self._move_failed(job, "daemon.failed_dir", self.paths.failed_dir, exc)
                return
            self._moved(job, target)
        text = error_text(original=str(self.paths.inbox / job.relpath), problem=job.error or "unknown",
                          advice=advice or "check the file", job_id=job.id, attempts=job.attempts,
                          max_attempts=config.daemon.max_attempts)
        error_file = target.with_name(target.name + ERROR_SUFFIX)
        try:
            atomic_write(error_file, text, errors="surrogateescape")  # a name's bytes as the OS gave them
        except OSError as exc:
            logger.warning("job {}: cannot write {} ({}); `midframe jobs` has the reason", job.id, error_file,
                           exc.strerror or exc)

    # --- start-up --------------------------------------------------------------------------------

    def remove_stale_work(self, active: set[int]) -> None:
        """Work folders and results of jobs that are no longer queued or running."""
        if not self.work_root.is_dir():
            return
        for entry in self.work_root.iterdir():
            number = entry.name.removeprefix("job-").split("-")[0].split(".")[0]
            if not (number.isdigit() and int(number) in active):
                logger.info("removing stale work {}", entry)
                remove_tree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)

    def recover_moves(self, jobs: list[Job], config: Config, *, retrying: bool = False) -> None:
        """Finish moving the sources of done and failed jobs that a crash (or, ``retrying``, a failed
        move) left in the inbox."""
        self.moves_pending = False
        elsewhere = (self.paths.done_dir, self.paths.failed_dir, self.paths.outbox)
        for job in jobs:
            source = Path(job.path)
            in_inbox = source.is_relative_to(self.paths.inbox) and not any(map(source.is_relative_to, elsewhere))
            if job.state not in ("done", "failed") or not in_inbox:
                continue
            if not source.exists() or (job.state == "done" and config.daemon.on_success == "keep"):
                continue
            if retrying:
                logger.debug("job {}: trying again to move {}", job.id, source)
            else:
                logger.info("job {}: finishing the move of {} cut short by a crash", job.id, source)
            if job.state == "done":
                self.dispose_source(job, config)
            else:
                self.move_to_failed(job, config, advice="" if retrying else "see the log of the run that stopped")
