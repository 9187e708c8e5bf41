"""Doing what an outcome says: one route per kind of outcome (see :mod:`midframe.daemon.outcomes`).

=================  ==========================================================================
outcome            route
=================  ==========================================================================
input              the source to failed_dir with its error file; a notification
setting            the job back to the queue (no attempt used), the daemon paused until the
                   outcome's ``resolved_by`` says the problem is gone
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
from pathlib import Path
from typing import ClassVar

from loguru import logger

from midframe.config import Config
from midframe.daemon.checks import folders_of
from midframe.daemon.finishing import Finisher
from midframe.daemon.naming import output_extension
from midframe.daemon.notify import Notifier, format_duration
from midframe.daemon.outcomes import Context, Outcome, SourceFacts, backoff_s, classify, retry_or_fail, source_outcome
from midframe.daemon.pauses import DISK, FARM, SETTINGS, Pause, Recheck
from midframe.daemon.store import Job, JobStore

# A job sent back to settling is looked at again after this long even if the watcher never hands the
# file on again (it always should; this only keeps a lost event from parking a job for good).
SETTLE_FALLBACK_S = 300.0


class Router:
    ROUTES: ClassVar[dict[str, str]] = {
        "input": "fail",
        "setting": "pause_for",
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
        space_recheck: Recheck,
        resettle: Callable[[Path, float], None],
        writing: Callable[[Path], bool],
        wall_clock: Callable[[], float],
        wake: Callable[[], None],
        farm_recheck: Recheck = lambda config: None,
    ) -> None:
        self.store = store
        self.finisher = finisher
        self._notifier = notifier
        self._hold = hold
        self._settings_recheck = settings_recheck
        self._space_recheck = space_recheck
        self._resettle = resettle
        self._writing = writing
        self._wall = wall_clock
        self._wake = wake
        self._farm_recheck = farm_recheck

    # --- what is known besides the error --------------------------------------------------------

    def facts(self, job: Job) -> SourceFacts:
        source = Path(job.path)
        try:
            info = source.stat()
        except OSError:
            return SourceFacts(source, exists=False)
        return SourceFacts(
            source,
            changed=(info.st_size, info.st_mtime) != (job.size, job.mtime),
            open_for_writing=self._writing(source),
            changed_ago_s=max(0.0, self._wall() - max(info.st_mtime, info.st_ctime)),
        )

    def context(self, job: Job, config: Config) -> Context:
        paths = self.finisher.paths
        staged = job.staged or str(self.finisher.staged_name(job, output_extension(Path(job.name), config.output)))
        said = f"the output of {job.name}"
        return Context(source=self.facts(job), name=job.name, folders=folders_of(paths),
                       work_root=self.finisher.work_root, renames={staged: said, Path(staged).name: said},
                       stalled_copy_s=config.daemon.stalled_copy_seconds)

    # --- routing --------------------------------------------------------------------------------

    def source_moved(self, job: Job, config: Config) -> bool:
        """Before a job starts: route it if its source is gone or not the file that settled."""
        outcome = source_outcome(self.context(job, config))
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
        job = self.finisher.fail(job, problem=outcome.problem, advice=outcome.advice, config=config)
        logger.error("job {} failed: {}: {}", job.id, job.relpath, outcome.text)
        self._notifier.failed(job.id, job.name, outcome.text)

    def retry_later(self, job: Job, outcome: Outcome, config: Config) -> None:
        if retry_or_fail(job.attempts, config.daemon.max_attempts) == "fail":
            tried = f"tried {job.attempts} time{'s' if job.attempts > 1 else ''}; the last time: "
            self.fail(job, Outcome("transient", tried + outcome.problem,
                                   "if it keeps happening, the log says more; the file itself may be fine"), config)
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
        if outcome.resolved_by == "space":
            recheck, name = self._space_recheck, DISK
        elif outcome.resolved_by == "farm":
            recheck, name = self._farm_recheck, FARM
        elif outcome.resolved_by == "config_change":
            failed_with = (config.engine, config.output)

            def recheck(current: Config) -> str | None:
                mine = current.effective(job.profile) if job.profile in current.profiles else current
                if (mine.engine, mine.output) == failed_with:
                    return outcome.text
                return self._settings_recheck(current)

        self._hold(Pause(name, outcome.text, recheck))

    def back_to_settling(self, job: Job, outcome: Outcome, config: Config) -> None:
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
