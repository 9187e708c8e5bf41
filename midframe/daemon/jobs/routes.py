"""Doing what an outcome says: one route per kind of outcome (see :mod:`midframe.daemon.jobs.outcomes`).

=================  ==========================================================================
outcome            route
=================  ==========================================================================
input              the source to failed_dir with its error file; a notification
setting            the job back to the queue (no attempt used), the daemon paused until the
                   outcome's ``resolved_by`` says the problem is gone; what the job made is kept
changed            what the job made is discarded, the job ends as cancelled ("... changed while
                   it was converted"), and the file as it is now is a new job, claimed once the
                   watcher has settled it (or the job the watcher queued for it already)
source_changed     the job back to the queue (no attempt used) until the watcher has settled
                   the file again; ``not_before`` keeps it from being claimed meanwhile
source_gone        the job ends as cancelled
transient          the job back to the queue after a backoff (``not_before``), or failed once
                   ``daemon.max_attempts`` are used
=================  ==========================================================================

A new kind of outcome gets a row in the outcome table and a route here; the worker does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from loguru import logger

from midframe.config import Config
from midframe.daemon.jobs.events import Notifier
from midframe.daemon.jobs.finishing import Finisher
from midframe.daemon.jobs.naming import output_extension
from midframe.daemon.jobs.outcomes import (
    Context,
    Outcome,
    SourceFacts,
    backoff_s,
    classify,
    retry_or_fail,
    source_outcome,
)
from midframe.daemon.jobs.pauses import DISK, FARM, FOLDER, QUICK_RECHECK_S, SETTINGS, Pause, Recheck
from midframe.daemon.jobs.settings_check import folders_of, write_problem
from midframe.daemon.store.records import Job, JobStore
from midframe.fs.identity import Fingerprint, Identity
from midframe.sentences import format_duration

# A job sent back to settling is looked at again after this long even if the watcher never hands the
# file on again (it always should; this only keeps a lost event from parking a job for good).
SETTLE_FALLBACK_S = 300.0
SPACE_MARGIN = 1 << 20  # a full disk counts as freed once this much is free beyond daemon.min_free_mb


class Router:
    ROUTES: ClassVar[dict[str, str]] = {
        "input": "fail",
        "setting": "pause_for",
        "changed": "changed_while_converted",
        "source_changed": "back_to_settling",
        "source_gone": "gone",
        "transient": "retry_later",
    }

    def __init__(
        self,
        store: JobStore,
        finisher: Finisher,
        *,
        notifier: Notifier,
        hold: Callable[[Pause], None],
        settings_recheck: Recheck,
        free_bytes: Callable[[Path], int],
        resettle: Callable[[Path, float], None],
        writing: Callable[[Path], bool],
        wall_clock: Callable[[], float],
        wake: Callable[[], None],
        farm_recheck: Recheck = lambda config: None,
        folder_test: Callable[[Path], str | None] = write_problem,
    ) -> None:
        self.store = store
        self.finisher = finisher
        self._notifier = notifier
        self._hold = hold
        self._settings_recheck = settings_recheck
        self._free_bytes = free_bytes
        self._resettle = resettle
        self._writing = writing
        self._wall = wall_clock
        self._wake = wake
        self._farm_recheck = farm_recheck
        self._folder_test = folder_test

    # --- what is known besides the error --------------------------------------------------------

    def facts(self, job: Job) -> SourceFacts:
        source = Path(job.path)
        try:
            info = source.stat()
        except OSError:
            return SourceFacts(source, exists=False)
        return SourceFacts(
            source,
            changed=self.finisher.source_change(job, info) is not None,
            open_for_writing=self._writing(source),
            changed_ago_s=max(0.0, self._wall() - max(info.st_mtime, info.st_ctime)),
        )

    def unwritable(self, job: Job) -> dict[str, str]:
        """The folders this job writes (its work folder, its output's folder) that fail a write test now."""
        found: dict[str, str] = {}
        for folder in (self.finisher.work_root, self.finisher.output_folder(job)):
            problem = self._folder_test(folder)
            if problem is not None:
                found.setdefault("outbox", problem)
        return found

    def context(self, job: Job, config: Config, *, look_at_folders: bool = True) -> Context:
        paths = self.finisher.paths
        staged = job.staged or str(self.finisher.staged_name(job, output_extension(Path(job.name), config.output)))
        said = f"the output of {job.name}"
        return Context(source=self.facts(job), name=job.name, folders=folders_of(paths),
                       work_root=self.finisher.work_root, renames={staged: said, Path(staged).name: said},
                       stalled_copy_s=config.daemon.stalled_copy_seconds,
                       unwritable=self.unwritable(job) if look_at_folders else {})

    # --- routing --------------------------------------------------------------------------------

    def changed_before_start(self, job: Job, config: Config) -> None:
        """The source changed between settling and being read in full: it settles again, same job."""
        context = self.context(job, config, look_at_folders=False)
        moved = source_outcome(replace(context, source=replace(context.source, changed=True)))
        assert moved is not None
        self.apply(job, moved, config)

    def source_moved(self, job: Job, config: Config) -> bool:
        """Before a job starts: route it if its source is gone or not the file that settled."""
        outcome = source_outcome(self.context(job, config, look_at_folders=False))
        if outcome is not None:
            self.apply(job, outcome, config)
        return outcome is not None

    def route(self, job: Job, error: BaseException, config: Config) -> None:
        outcome = classify(error, self.context(job, config))
        if outcome.internal:
            logger.opt(exception=error).error("job {}: internal error", job.id)
        self.apply(job, outcome, config)

    def apply(self, job: Job, outcome: Outcome, config: Config) -> None:
        getattr(self, self.ROUTES[outcome.kind])(job, outcome, config)

    # --- the routes -----------------------------------------------------------------------------

    def fail(self, job: Job, outcome: Outcome, config: Config) -> None:
        """``outcome.problem`` names the file, once: the job's error, its error file, the notification's
        body and the log line show it as it is, and none adds the name again."""
        job = self.finisher.fail(job, problem=outcome.problem, advice=outcome.advice, config=config)
        logger.error("job {} failed: {}", job.id, outcome.text)
        self._notifier.failed(job.id, job.name, outcome.text)

    def retry_later(self, job: Job, outcome: Outcome, config: Config) -> None:
        if retry_or_fail(job.attempts, config.daemon.max_attempts) == "fail":
            tried = (f"{job.name} failed {job.attempts} times; the last time: " if job.attempts > 1
                     else f"{job.name} failed: ")
            advice = outcome.last_advice or "if it keeps happening, the log says more; the file itself may be fine"
            self.fail(job, Outcome("transient", tried + outcome.problem, advice), config)
            return
        wait = backoff_s(job.attempts)
        self.store.requeue(job.id, error=outcome.problem, not_before=self._wall() + wait)
        logger.warning("job {} attempt {} of {} failed: {}; trying again in {}", job.id, job.attempts,
                       config.daemon.max_attempts, outcome.problem, format_duration(wait))
        self._wake()

    def pause_for(self, job: Job, outcome: Outcome, config: Config) -> None:
        """A setting this machine cannot honour: the job waits in the queue, the source in the inbox."""
        self.store.requeue(job.id, error=outcome.problem, interrupted=True)
        recheck: Recheck = self._settings_recheck
        name = SETTINGS
        if outcome.resolved_by in ("write", "space"):
            self._hold(self._folder_pause(outcome))
            return
        if outcome.resolved_by == "farm":
            recheck, name = self._farm_recheck, FARM
        elif outcome.resolved_by == "config_change":
            failed_with = (config.engine, config.output)
            # Nothing made with the refused settings is kept: the next try plans (and names) its output
            # afresh, in the container the changed settings ask for.
            self.finisher.remove_work(job)
            self.store.set_staged(job.id, None)

            def recheck(current: Config) -> str | None:
                mine = current.effective(job.profile) if job.profile in current.profiles else current
                if (mine.engine, mine.output) == failed_with:
                    return outcome.text
                return self._settings_recheck(current)

        self._hold(Pause(name, outcome.text, recheck))

    def _folder_pause(self, outcome: Outcome) -> Pause:
        """Lifted once a write test in the folder succeeds and, for a full disk, there is room again
        beyond ``daemon.min_free_mb`` (looked at every few seconds). Whether the next job fits is the
        space estimate's to say when it is claimed."""
        key = outcome.key or "outbox"
        folder = folders_of(self.finisher.paths)[key]
        full = outcome.resolved_by == "space"

        def recheck(config: Config) -> str | None:
            if self._folder_test(folder) is not None:
                return outcome.text
            if full and self._free_bytes(folder) < (config.daemon.min_free_mb << 20) + SPACE_MARGIN:
                return outcome.text
            return None

        return Pause(DISK if full else f"{FOLDER} {key}", outcome.text, recheck, QUICK_RECHECK_S)

    def changed_while_converted(self, job: Job, outcome: Outcome, config: Config) -> None:
        """The source is another file now (replaced, grown, rewritten): nothing made from the old one
        may be published, and the file as it is now is converted by a job of its own."""
        self.finisher.remove_work(job)
        source = Path(job.path)
        try:
            info = source.stat()
            print_ = Fingerprint.of(source, size=info.st_size).text()
        except OSError:
            self.store.finish(job.id, "cancelled", error=f"{outcome.problem}; it is gone now")
            logger.warning("job {}: {}; it is gone now", job.id, outcome.problem)
            return
        # Waits for the watcher to settle it (a recording may still be growing); the watcher queues a
        # changed file by itself too, and whichever comes first is the one job for it.
        newer, _ = self.store.add_unless_queued(
            source, relpath=job.relpath, size=info.st_size, mtime=info.st_mtime, fingerprint=print_,
            profile=job.profile, identity=Identity.of(info).text(), not_before=self._wall() + SETTLE_FALLBACK_S)
        self.store.finish(job.id, "cancelled", error=f"{outcome.problem}; its new content is job {newer.id}")
        self._resettle(source, 0.0)
        logger.warning("job {}: {}; {} (job {})", job.id, outcome.problem, outcome.advice, newer.id)
        self._notifier.warning(f"{job.name} changed while it was converted; it is converted again")

    def back_to_settling(self, job: Job, outcome: Outcome, config: Config) -> None:
        if job.staged and self.facts(job).changed:
            Path(job.staged).unlink(missing_ok=True)  # made from what the file was: never to be published
        newer = self.store.queued_at(Path(job.path))
        if newer is not None and newer.id != job.id:
            # The file changed while this job ran and its new content is queued already.
            self.finisher.remove_work(job)
            self.store.finish(job.id, "cancelled", error=f"{outcome.problem}; its new content is job {newer.id}")
            logger.info("job {}: {}; its new content is job {}", job.id, outcome.problem, newer.id)
            return
        self.store.requeue(job.id, interrupted=True, not_before=self._wall() + outcome.wait_s + SETTLE_FALLBACK_S)
        self._resettle(Path(job.path), outcome.wait_s)
        logger.info("job {}: {}; {}", job.id, outcome.problem, outcome.advice)

    def gone(self, job: Job, outcome: Outcome, config: Config) -> None:
        self.finisher.remove_work(job)
        self.store.finish(job.id, "cancelled", error=outcome.problem)
        logger.warning("job {} dropped: {}", job.id, outcome.problem)
