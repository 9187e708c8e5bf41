"""One claimed job, from the checks before its conversion to its outcome (the worker decides when a job
runs; this module what happens to it).

One job's flow (:meth:`JobFlow.run`): is its profile still there; is the source still the file that
settled; read it in full (its SHA-256 and identity, :mod:`midframe.daemon.jobs.source_identity`); a duplicate of a
done job?; room for it on the outbox's disk (:mod:`midframe.daemon.jobs.outbox_space`, else it waits and the next job
goes); convert, with the source's identity checked between batches and before the join; check it once
more; publish.

A job's work lives in ``<outbox>/.midframe-work/job-<id>`` (hidden); the finished video is first
``job-<id>-result<ext>`` beside it, then takes its real name in the outbox (never overwriting), and only
then is the job on record as done (:mod:`midframe.daemon.jobs.finishing`). Whatever goes wrong is handed to
the outcome table (:mod:`midframe.daemon.jobs.outcomes`), and the router (:mod:`midframe.daemon.jobs.routes`)
does what it says: fail the input, pause for a setting, settle the source again, or retry later; its
decision goes back to the worker, which applies what is left to it (a pause, a look for the next job).
"""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from midframe.config import Config
from midframe.daemon.jobs.finishing import Finisher
from midframe.daemon.jobs.naming import output_extension, settings_json, settings_key
from midframe.daemon.jobs.outbox_space import Room
from midframe.daemon.jobs.outcomes import Outcome
from midframe.daemon.jobs.routes import Decision, Router
from midframe.daemon.jobs.running import Running, UnderWay
from midframe.daemon.jobs.services import Convert, JobServices, MakeInterpolator
from midframe.daemon.jobs.source_identity import GuardedControl, SourceGuard
from midframe.daemon.store.records import Job
from midframe.engine import FALLBACK_CONTAINER, Children, PipelineReport
from midframe.errors import Aborted, MediaError, StoreUnwritable
from midframe.fs import folders, identity
from midframe.fs.identity import Fingerprint
from midframe.sentences import format_duration

__all__ = ["Convert", "JobFlow", "MakeInterpolator"]


class JobFlow:
    """Runs one claimed job to its outcome (:meth:`run`). A job's conversion is registered in
    ``underway`` while it runs (the worker's stop, pause and cancel reach it there)."""

    def __init__(self, services: JobServices, finisher: Finisher, router: Router, room: Room,
                 underway: UnderWay) -> None:
        self.store = services.store
        self.finisher = finisher
        self.router = router
        self.room = room
        self.underway = underway
        self._events = services.events
        self._ffmpeg = services.ffmpeg
        self._make_interpolator = services.make_interpolator
        self._convert = services.convert
        self._clock = services.clock

    def run(self, job: Job, config: Config) -> Decision | None:
        """Run ``job`` (just claimed) with the top-level ``config``; an error it does not expect still
        ends as an outcome (the router's), never out of here while the job is running; but for
        ``StoreUnwritable``: with nothing recorded the worker pauses and queues the job again later.
        Returns the router's decision for the worker to apply, or None (done, interrupted, waiting
        for room, a duplicate)."""
        try:
            if job.profile is not None and job.profile not in config.profiles:
                return self.router.apply(job, Outcome(
                    "input", f"{job.relpath}: its folder's profile {job.profile!r} is no longer in the config",
                    f"add profiles.{job.profile} back, or drop the file into the inbox itself for the top-level "
                    "settings"), config)
            config = config.effective(job.profile)
            return self._process(job, config)
        except StoreUnwritable:
            raise  # nothing can be recorded, so nothing is decided: the worker pauses, the job stays as it is
        except Exception as exc:
            latest = self.store.get(job.id)
            if latest is not None and latest.state == "running":
                return self.router.route(latest, exc, config)
            logger.exception("job {}: internal error after its outcome was recorded", job.id)
            return None

    def _process(self, job: Job, config: Config) -> Decision | None:
        moved = self.router.source_moved(job, config)
        if moved is not None:
            return moved
        identified = self._identify(job, config)
        if not isinstance(identified, Job):
            return identified
        if self._duplicate(identified, config) or self.room.waits(identified, config):
            return None
        job = identified
        staged = self._staged(job, config)
        guard = SourceGuard(job, change=self.finisher.source_change)
        children = Children(stall_s=config.daemon.child_stall_seconds)
        running = self._begin(job, GuardedControl(guard, children=children), config)
        job = running.job
        try:
            report = None
            staged = self._finished_elsewhere(job, staged)
            if not staged.exists():
                staged.parent.mkdir(parents=True, exist_ok=True)
                report = self._convert(
                    Path(job.path), staged, work_dir=self.finisher.work_dir(job.id), engine=config.engine,
                    output=config.output, resume=config.resume, make_interpolator=self._make_interpolator,
                    ffmpeg=self._ffmpeg, control=running.control,
                    on_progress=running.on_progress, fingerprint=Fingerprint.parse(job.fingerprint),
                )
                if report.output != staged:  # the plan chose another container (output.container: null)
                    staged = Path(report.output)
                    self.store.set_staged(job.id, str(staged))
            guard.check(rehash=True)  # the last word before anything made from it is published
        except Aborted:
            self._interrupted(running, config)
        except StoreUnwritable:
            raise
        except Exception as exc:
            return self.router.route(job, exc, config)
        else:
            self._succeed(running, staged, report, config)
        finally:
            self.underway.end(job.id)
        return None

    def _finished_elsewhere(self, job: Job, staged: Path) -> Path:
        """After a crash between the conversion and recording its container: the result it left."""
        fallback = staged.with_suffix(f".{FALLBACK_CONTAINER}")
        if not staged.exists() and fallback != staged and fallback.exists():
            self.store.set_staged(job.id, str(fallback))
            return fallback
        return staged

    def _identify(self, job: Job, config: Config) -> Job | Decision | None:
        """Read the whole source once: its SHA-256 (what makes a later job a duplicate, with the settings
        key) and its identity as it was read. The router's decision when it changed meanwhile (it
        settles again); None when a stop came while reading (it is queued again)."""
        key = settings_key(config.engine, config.output)
        if job.sha256 is not None and job.identity is not None:
            if job.settings_key != key:
                self.store.set_content(job.id, sha256=job.sha256, settings_key=key)
            return self.store.get(job.id) or job
        content = identity.read_content(Path(job.path), keep_going=lambda: not self.underway.stopping)
        if content is None:
            self.store.requeue(job.id, interrupted=True)
            return None
        if not content.steady or self.finisher.source_change(job, content.info) is not None:
            return self.router.changed_before_start(job, config)
        self.store.set_content(job.id, sha256=content.sha256, settings_key=key, identity=content.identity.text())
        return self.store.get(job.id) or job

    def _staged(self, job: Job, config: Config) -> Path:
        """Where the finished video waits before it takes its name; chosen once, so a resumed job
        finishes into the container it started with."""
        if job.staged:
            return Path(job.staged)
        staged = self.finisher.staged_name(job, output_extension(Path(job.name), config.output))
        self.store.set_staged(job.id, str(staged))
        return staged

    def _begin(self, job: Job, control: GuardedControl, config: Config) -> Running:
        job = self.store.get(job.id) or job
        if not config.resume.enabled:
            folders.remove_tree(self.finisher.work_dir(job.id))
        self.store.set_settings(job.id, settings_json(config.engine, config.output))
        running = Running(job, control, started=self._clock(), store=self.store, events=self._events,
                          clock=self._clock)
        self.underway.begin(running)
        resumed_at = job.frames_done / job.frames_total if job.frames_total and job.frames_done else None
        logger.info("job {} started: {} (attempt {} of {}{})", job.id, job.relpath, job.attempts,
                    config.daemon.max_attempts, f", resuming near {resumed_at:.0%}" if resumed_at else "")
        self._events.started(job.id, job.name, resumed_at=resumed_at)
        return running

    def _duplicate(self, job: Job, config: Config) -> bool:
        """Same content, same settings, and the earlier output still reads back as it was made: give it
        this job's name. An earlier output that does not (gone, damaged) is never passed on."""
        for earlier in self.store.done_with_content(job):
            try:
                read = self.finisher.reusable(earlier)
            except MediaError as exc:
                logger.info("job {}: {} has the same content as job {}, but its output {} {}; converting it "
                            "afresh", job.id, job.relpath, earlier.id, exc.path, exc.reason)
                continue
            final = self.finisher.publish_copy(job, earlier, read, config)
            logger.info("job {}: {} has the same content as job {} and the same settings; its output {} is "
                        "also {}", job.id, job.relpath, earlier.id, earlier.output, final)
            self._events.done(job.id, job.name, final.name, 0.0)
            return True
        return False

    def _interrupted(self, running: Running, config: Config) -> None:
        job = running.job
        if running.cancel_requested:
            self.finisher.remove_work(job)
            self.store.finish(job.id, "cancelled", error="cancelled")
            logger.info("job {} cancelled while running: {} (the source stays at {})", job.id, job.name, job.path)
            self._events.warning(f"{job.name}: cancelled")
            return
        running.store_progress()
        self.store.requeue(job.id, interrupted=True)
        if not config.resume.enabled:
            folders.remove_tree(self.finisher.work_dir(job.id))
        done = running.progress.fraction if running.progress else 0.0
        logger.info("job {} interrupted at {:.0%}: {}; it {} at the next start", job.id, done, job.name,
                    "resumes from its last checkpoint" if config.resume.enabled else "starts over")

    def _succeed(self, running: Running, staged: Path, report: PipelineReport | None, config: Config) -> None:
        job = running.job
        if report is not None and report.extra.get("workers"):
            self.store.set_workers(job.id, report.extra["workers"])  # before the job shows as done
        if report is not None and report.scenes:
            self.store.set_scenes(job.id, report.scenes)  # engine auto's choice per scene, for the history
        final = self.finisher.publish(job, staged, report, config)
        if report is not None:
            self.store.set_progress(job.id, frames_done=report.frames_out, frames_total=report.frames_out,
                                    resumed_from=report.resumed_from_frame)
        seconds = self._clock() - running.started
        details = ""
        if report is not None:
            details = f" ({report.frames_in} -> {report.frames_out} frames, {report.engine} on {report.device}"
            details += f", resumed at frame {report.resumed_from_frame})" if report.resumed_from_frame else ")"
        logger.success("job {} done: {} -> {} in {}{}", job.id, job.relpath, final, format_duration(seconds), details)
        self._events.done(job.id, job.name, final.name, seconds)
