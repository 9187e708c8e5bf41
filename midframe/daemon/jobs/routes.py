"""Doing what an outcome says: :func:`decide` turns an outcome (:mod:`midframe.daemon.jobs.outcomes`)
into a :class:`Decision` (pure: no I/O, no clock), and the :class:`Router` carries out its part on
the job's record, then hands the decision back: what is left is the worker's (hold a pause, look for
the next job at once), and the worker applies it. No route calls back into the worker.

=================  ===========  ==============================================================
outcome            decision     route
=================  ===========  ==============================================================
input              FAIL         the source to failed_dir with its error file; a notification
setting            PAUSE        the job back to the queue (no attempt used), the daemon paused
                                until the outcome's ``resolved_by`` says the problem is gone;
                                what the job made is kept
changed            REPLACE      what the job made is discarded, the job ends as cancelled ("...
                                changed while it was converted"), and the file as it is now is a
                                new job, claimed once the watcher has settled it (or the job the
                                watcher queued for it already)
source_changed     RESETTLE     the job back to the queue (no attempt used) until the watcher has
                                settled the file again; ``not_before`` keeps it from being claimed
                                meanwhile
source_gone        DROP         the job ends as cancelled
transient          RETRY        the job back to the queue after a backoff (``not_before``), or
                   or FAIL      failed once ``daemon.max_attempts`` are used
=================  ===========  ==============================================================

A new kind of outcome gets a row in the outcome table, a decision here and a route; the worker does
not change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from pathlib import Path

from loguru import logger

from midframe.config import Config
from midframe.daemon.jobs.finishing import Finisher
from midframe.daemon.jobs.naming import output_extension
from midframe.daemon.jobs.outcomes import (
    Context,
    Kind,
    Outcome,
    SourceFacts,
    backoff_s,
    classify,
    retry_or_fail,
    source_outcome,
)
from midframe.daemon.jobs.pauses import DISK, FARM, FOLDER, QUICK_RECHECK_S, SETTINGS, Pause, Recheck
from midframe.daemon.jobs.services import JobServices
from midframe.daemon.jobs.settings_check import folders_of
from midframe.daemon.store.records import Job
from midframe.fs.identity import Fingerprint, Identity
from midframe.sentences import format_duration

# A job sent back to settling is looked at again after this long even if the watcher never hands the
# file on again (it always should; this only keeps a lost event from parking a job for good).
SETTLE_FALLBACK_S = 300.0
SPACE_MARGIN = 1 << 20  # a full disk counts as freed once this much is free beyond daemon.min_free_mb
GENERAL_LAST_ADVICE = "if it keeps happening, the log says more; the file itself may be fine"


class Route(enum.Enum):
    FAIL = "fail"            # the input fails: failed_dir, its error file, a notification
    RETRY = "retry"          # back to the queue after a backoff (``wait_s``)
    PAUSE = "pause"          # back to the queue; the daemon pauses (``pause``) until the problem is gone
    REPLACE = "replace"      # the source changed while converted: its new content is a new job
    RESETTLE = "resettle"    # back to the queue until the watcher has settled the file again
    DROP = "drop"            # the source is gone: the job ends as cancelled


ROUTES: dict[Kind, Route] = {
    "input": Route.FAIL,
    "setting": Route.PAUSE,
    "changed": Route.REPLACE,
    "source_changed": Route.RESETTLE,
    "source_gone": Route.DROP,
    "transient": Route.RETRY,
}


@dataclass(frozen=True)
class Decision:
    route: Route
    outcome: Outcome
    wait_s: float = 0.0          # RETRY: the backoff; RESETTLE: how long the file should stay quiet first
    pause: str | None = None     # PAUSE: the name it pauses under (settings, farm, disk, "folder <key>")
    hold: Pause | None = None    # PAUSE: the pause itself, with its recheck (the router fills it in)

    @property
    def wakes(self) -> bool:
        """Whether the worker should look for the next job at once (a retried job waits its backoff,
        the others behind it need not)."""
        return self.route is Route.RETRY


def pause_name(outcome: Outcome) -> str:
    """One pause per kind of problem: a folder's own, a full disk, the farm's, or the settings'."""
    if outcome.resolved_by == "write":
        return f"{FOLDER} {outcome.key or 'outbox'}"
    if outcome.resolved_by == "space":
        return DISK
    if outcome.resolved_by == "farm":
        return FARM
    return SETTINGS


def decide(outcome: Outcome, *, name: str, attempts: int, max_attempts: int) -> Decision:
    """What becomes of a job (``name``, tried ``attempts`` times) whose try ended with ``outcome``."""
    route = ROUTES[outcome.kind]
    if route is Route.RETRY:
        if retry_or_fail(attempts, max_attempts) == "fail":
            tried = f"{name} failed {attempts} times; the last time: " if attempts > 1 else f"{name} failed: "
            return Decision(Route.FAIL, Outcome("transient", tried + outcome.problem,
                                                outcome.last_advice or GENERAL_LAST_ADVICE))
        return Decision(route, outcome, wait_s=backoff_s(attempts))
    if route is Route.PAUSE:
        return Decision(route, outcome, pause=pause_name(outcome))
    if route is Route.RESETTLE:
        return Decision(route, outcome, wait_s=outcome.wait_s)
    return Decision(route, outcome)


class Router:
    """Carries out a decision on the job's record (store, work files, source, log, job events)."""

    def __init__(self, services: JobServices, finisher: Finisher) -> None:
        self.store = services.store
        self.finisher = finisher
        self._services = services
        self._events = services.events
        self._free_bytes = services.free_bytes
        self._resettle = services.resettle
        self._writing = services.writing
        self._wall = services.wall_clock
        self._farm_recheck = services.check_farm
        self._folder_test = services.folder_test

    def _settings_recheck(self, config: Config) -> str | None:
        return "; ".join(self._services.check_settings(config)) or None

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

    def changed_before_start(self, job: Job, config: Config) -> Decision:
        """The source changed between settling and being read in full: it settles again, same job."""
        context = self.context(job, config, look_at_folders=False)
        moved = source_outcome(replace(context, source=replace(context.source, changed=True)))
        assert moved is not None
        return self.apply(job, moved, config)

    def source_moved(self, job: Job, config: Config) -> Decision | None:
        """Before a job starts: route it if its source is gone or not the file that settled."""
        outcome = source_outcome(self.context(job, config, look_at_folders=False))
        return None if outcome is None else self.apply(job, outcome, config)

    def route(self, job: Job, error: BaseException, config: Config) -> Decision:
        outcome = classify(error, self.context(job, config))
        if outcome.internal:
            logger.opt(exception=error).error("job {}: internal error", job.id)
        return self.apply(job, outcome, config)

    def apply(self, job: Job, outcome: Outcome, config: Config) -> Decision:
        decision = decide(outcome, name=job.name, attempts=job.attempts, max_attempts=config.daemon.max_attempts)
        if decision.route is Route.FAIL:
            self.fail(job, decision.outcome, config)
        elif decision.route is Route.RETRY:
            self.retry_later(job, decision, config)
        elif decision.route is Route.PAUSE:
            decision = replace(decision, hold=self.pause_for(job, decision, config))
        elif decision.route is Route.REPLACE:
            self.changed_while_converted(job, outcome)
        elif decision.route is Route.RESETTLE:
            self.back_to_settling(job, outcome)
        else:
            self.gone(job, outcome)
        return decision

    # --- the routes -----------------------------------------------------------------------------

    def fail(self, job: Job, outcome: Outcome, config: Config) -> None:
        """``outcome.problem`` names the file, once: the job's error, its error file, the notification's
        body and the log line show it as it is, and none adds the name again."""
        job = self.finisher.fail(job, problem=outcome.problem, advice=outcome.advice, config=config)
        logger.error("job {} failed: {}", job.id, outcome.text)
        self._events.failed(job.id, job.name, outcome.text)

    def retry_later(self, job: Job, decision: Decision, config: Config) -> None:
        outcome = decision.outcome
        self.store.requeue(job.id, error=outcome.problem, not_before=self._wall() + decision.wait_s)
        logger.warning("job {} attempt {} of {} failed: {}; trying again in {}", job.id, job.attempts,
                       config.daemon.max_attempts, outcome.problem, format_duration(decision.wait_s))

    def pause_for(self, job: Job, decision: Decision, config: Config) -> Pause:
        """A setting this machine cannot honour: the job waits in the queue, the source in the inbox;
        the pause to hold, with how to tell that its problem is gone."""
        outcome = decision.outcome
        name = decision.pause or SETTINGS
        self.store.requeue(job.id, error=outcome.problem, interrupted=True)
        if outcome.resolved_by in ("write", "space"):
            return self._folder_pause(outcome, name)
        recheck: Recheck = self._settings_recheck
        if outcome.resolved_by == "farm":
            recheck = self._farm_recheck
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

        return Pause(name, outcome.text, recheck)

    def _folder_pause(self, outcome: Outcome, name: str) -> Pause:
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

        return Pause(name, outcome.text, recheck, QUICK_RECHECK_S)

    def changed_while_converted(self, job: Job, outcome: Outcome) -> None:
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
        self._events.warning(f"{job.name} changed while it was converted; it is converted again")

    def back_to_settling(self, job: Job, outcome: Outcome) -> None:
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

    def gone(self, job: Job, outcome: Outcome) -> None:
        self.finisher.remove_work(job)
        self.store.finish(job.id, "cancelled", error=outcome.problem)
        logger.warning("job {} dropped: {}", job.id, outcome.problem)
