"""The worker: one job at a time, claim -> pipeline -> outcome.

One job's flow (:meth:`Worker._process`): is the source still the file that settled; read it in full
(its SHA-256 and identity, :mod:`midframe.daemon.identity`); a duplicate of a done job?; room for it
on the outbox's disk (:mod:`midframe.daemon.room`, else it waits and the next job goes); convert,
with the source's identity checked between batches and before the join; check it once more; publish.

A job's work lives in ``<outbox>/.midframe-work/job-<id>`` (hidden); the finished video is first
``job-<id>-result<ext>`` beside it, then takes its real name in the outbox (never overwriting), and only
then is the job on record as done (:mod:`midframe.daemon.finishing`). Whatever goes wrong is handed to
the outcome table (:mod:`midframe.daemon.outcomes`), and the router (:mod:`midframe.daemon.routing`)
does what it says: fail the input, pause for a setting, settle the source again, or retry later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import Config, EngineConfig, Paths
from midframe.daemon import files
from midframe.daemon.checks import write_problem
from midframe.daemon.finishing import Finisher
from midframe.daemon.identity import GuardedControl, SourceGuard
from midframe.daemon.jobs import Job, JobStore
from midframe.daemon.naming import output_extension, settings_json, settings_key
from midframe.daemon.notify import Notifier, format_duration
from midframe.daemon.outcomes import Outcome
from midframe.daemon.pauses import FARM, SETTINGS, Pause, Pauses
from midframe.daemon.room import Room
from midframe.daemon.running import Running
from midframe.daemon.routing import Router
from midframe.engine.formats import FALLBACK_CONTAINER
from midframe.engine.job import PipelineReport
from midframe.errors import Aborted

Convert = Callable[..., PipelineReport]
MakeInterpolator = Callable[[EngineConfig], Any]


def _pipeline_convert(*args: Any, **kwargs: Any) -> PipelineReport:
    from midframe.engine.pipeline import convert

    return convert(*args, **kwargs)


class Worker:
    """Runs jobs from ``store`` one at a time, in its own thread (``start``) or by ``run_once``."""

    def __init__(
        self,
        store: JobStore,
        paths: Paths,
        *,
        config: Callable[[], Config],
        notifier: Notifier,
        ffmpeg: Any,
        make_interpolator: MakeInterpolator,
        convert: Convert = _pipeline_convert,
        prepare: Callable[[], None] | None = None,
        check_settings: Callable[[Config], list[str]] = lambda config: [],
        check_farm: Callable[[Config], str | None] = lambda config: None,
        slots: Callable[[Config], int] = lambda config: 1,
        resettle: Callable[[Path, float], None] = lambda path, quiet_s: None,
        writing: Callable[[Path], bool] = files.open_for_writing,
        free_bytes: Callable[[Path], int] = files.free_bytes,
        folder_test: Callable[[Path], str | None] = write_problem,
        on_status: Callable[[str], None] = lambda text: None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        idle_wait_s: float = 1.0,
        recheck_s: float = 15.0,
    ) -> None:
        self.store = store
        self.paths = paths
        self.finisher = Finisher(store, paths, ffmpeg=ffmpeg)
        self.work_root = self.finisher.work_root
        self.pauses = Pauses(store, clock=clock, recheck_s=recheck_s)
        self.router = Router(store, self.finisher, notifier=notifier, hold=self._hold,
                             settings_recheck=self._settings_recheck, free_bytes=free_bytes,
                             resettle=resettle, writing=writing, wall_clock=wall_clock, wake=self.wake,
                             farm_recheck=check_farm, folder_test=folder_test)
        self.room = Room(store, paths.outbox, free_bytes=free_bytes, notifier=notifier, wall_clock=wall_clock)
        self._config = config
        self._notifier = notifier
        self._ffmpeg = ffmpeg
        self._make_interpolator = make_interpolator
        self._convert = convert
        self._prepare = prepare
        self._check = check_settings
        self._check_farm = check_farm
        self._slots = slots
        self._on_status = on_status
        self._clock = clock
        self._wall = wall_clock
        self._idle_wait_s = idle_wait_s
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._claimed = 0  # jobs claimed and not yet finished (a claimed job is running before it is in _running)
        self._job_threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        # A daemon thread: a pipeline that ignores the stop request must not keep the process alive.
        self._thread = threading.Thread(target=self._run, name="midframe-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception:
                logger.exception("preparing the engine failed; the settings check says what is missing")
            if self.pauses.recheck(self._config(), force=True):
                self._after_lift()
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                logger.exception("worker: unexpected error between jobs; carrying on")
                worked = False
            if not worked:
                self._wake.wait(self._idle_wait_s)
                self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Stop after the current batch; the job goes back to the queue and resumes at the next start."""
        with self._lock:
            self._stop.set()
            for running in self._running.values():
                running.control.abort("stopped")
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        threads = ([self._thread] if self._thread is not None else []) + list(self._job_threads)
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    # --- pauses ----------------------------------------------------------------------------------

    @property
    def pause_reason(self) -> str | None:
        """None, or why nothing is converted now: ``status --json``'s ``paused_reason``."""
        return self.pauses.reason or (self.room.reason if self._claimed == 0 else None)

    def pause(self) -> None:
        """A person's pause: holds the running job between batches; survives a restart."""
        if self.pauses.set_user(True):
            self._hold_running()
            logger.info("paused on request")
            self._notifier.paused("paused on request")

    def resume(self) -> None:
        """Lift a person's pause and look again at every other one at once."""
        was = self.pause_reason is not None
        self.pauses.set_user(False)
        self.pauses.recheck(self._config(), force=True)
        if was:
            self._after_lift()
        self._wake.set()

    def recheck_pauses(self) -> None:
        """Look again at every automatic pause now (the farm's scheduler came back)."""
        if self.pauses.recheck(self._config(), force=True):
            self._after_lift()
        self._wake.set()

    def check_settings(self, config: Config | None = None) -> list[str]:
        """Check the settings ``config`` (or the current one) would run with; pause while they
        cannot work, resume once they can. Returns the problems."""
        config = config or self._config()
        problems = self._check(config)
        if problems:
            self._hold(Pause(SETTINGS, "; ".join(problems), self._settings_recheck))
        elif self.pauses.remove(SETTINGS):
            self._after_lift()
        return problems

    def _settings_recheck(self, config: Config) -> str | None:
        return "; ".join(self._check(config)) or None

    def _hold(self, pause: Pause) -> None:
        if self.pauses.add(pause):
            self._hold_running()
            logger.warning("paused: {}", pause.reason)
            self._notifier.paused(pause.reason)

    def _hold_running(self) -> None:
        with self._lock:
            held = list(self._running.values())
            for running in held:
                running.control.pause()
        for running in held:
            running.store_progress()

    def _after_lift(self) -> None:
        if self.pauses.active():
            logger.info("still paused: {}", self.pause_reason)
            return
        with self._lock:
            for running in self._running.values():
                running.control.resume()
        logger.info("resumed")
        self._notifier.resumed()
        self._wake.set()

    # --- cancel, retry, status -----------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        with self._lock:
            running = self._running.get(job_id)
            if running is not None:
                running.cancel_requested = True
                running.control.abort("cancelled")
                return running.job
        job = self.store.cancel(job_id)
        logger.info("job {} cancelled: {}", job.id, job.name)
        return job

    def retry(self, job_id: int) -> Job:
        job = self.store.retry(job_id)
        Path(job.path + ".error.txt").unlink(missing_ok=True)
        logger.info("job {} queued again: {}", job.id, job.name)
        self._wake.set()
        return job

    def current(self) -> dict[str, Any] | None:
        """The running job (the one started first, when several run) in ``status --json``'s ``current`` shape."""
        with self._lock:
            running = min(self._running.values(), key=lambda item: item.started, default=None)
        return None if running is None else running.status()

    # --- one job -------------------------------------------------------------------------------

    def run_once(self, *, now: float | None = None) -> bool:
        """Claim and run the next job unless paused or stopping; returns whether there was one.
        ``now`` is the wall-clock time a job's ``not_before`` is compared with."""
        if self._stop.is_set():
            return False
        config = self._config()
        if self.pauses.recheck(config):
            self._after_lift()
        if self.pauses.active():
            return False
        farm = self._check_farm(config)
        if farm is not None:  # the render farm's scheduler is away: the jobs wait for it in the queue
            self._hold(Pause(FARM, farm, self._check_farm))
            return False
        slots = max(1, self._slots(config))
        with self._lock:
            if self._claimed >= slots:
                return False
            job = self.store.claim(now=self._wall() if now is None else now)
            self.room.claimed(job)
            if job is None:
                return False
            self._claimed += 1
        if slots == 1:
            self._work(job, config)
        else:  # several jobs at once (a render farm's farm.max_jobs): each in a thread of its own
            thread = threading.Thread(target=self._work, args=(job, config), name=f"midframe-job-{job.id}", daemon=True)
            self._job_threads = [*[t for t in self._job_threads if t.is_alive()], thread]
            thread.start()
        return True

    def _work(self, job: Job, config: Config) -> None:
        try:
            if job.profile is not None and job.profile not in config.profiles:
                self.router.apply(job, Outcome(
                    "input", f"{job.relpath}: its folder's profile {job.profile!r} is no longer in the config",
                    f"add profiles.{job.profile} back, or drop the file into the inbox itself for the top-level "
                    "settings"), config)
                return
            config = config.effective(job.profile)
            self._process(job, config)
        except Exception as exc:
            latest = self.store.get(job.id)
            if latest is not None and latest.state == "running":
                self.router.route(latest, exc, config)
            else:
                logger.exception("job {}: internal error after its outcome was recorded", job.id)
        finally:
            with self._lock:
                self._claimed -= 1
            self._wake.set()

    def work_dir(self, job_id: int) -> Path:
        return self.finisher.work_dir(job_id)

    def _process(self, job: Job, config: Config) -> None:
        if self.router.source_moved(job, config):
            return
        identified = self._identify(job, config)
        if identified is None or self._duplicate(identified, config) or self.room.waits(identified, config):
            return
        job = identified
        staged = self._staged(job, config)
        guard = SourceGuard(job, change=self.finisher.source_change)
        running = self._begin(job, GuardedControl(guard), config)
        job = running.job
        try:
            report = None
            staged = self._finished_elsewhere(job, staged)
            if not staged.exists():
                staged.parent.mkdir(parents=True, exist_ok=True)
                report = self._convert(
                    Path(job.path), staged, work_dir=self.work_dir(job.id), engine=config.engine,
                    output=config.output, resume=config.resume, make_interpolator=self._make_interpolator,
                    ffmpeg=self._ffmpeg, control=running.control,
                    on_progress=running.on_progress,
                )
                if report.output != staged:  # the plan chose another container (output.container: null)
                    staged = Path(report.output)
                    self.store.set_staged(job.id, str(staged))
            guard.check(rehash=True)  # the last word before anything made from it is published
        except Aborted:
            self._interrupted(running, config)
        except Exception as exc:
            self.router.route(job, exc, config)
        else:
            self._succeed(running, staged, report, config)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _finished_elsewhere(self, job: Job, staged: Path) -> Path:
        """After a crash between the conversion and recording its container: the result it left."""
        fallback = staged.with_suffix(f".{FALLBACK_CONTAINER}")
        if not staged.exists() and fallback != staged and fallback.exists():
            self.store.set_staged(job.id, str(fallback))
            return fallback
        return staged

    def _identify(self, job: Job, config: Config) -> Job | None:
        """Read the whole source once: its SHA-256 (what makes a later job a duplicate, with the settings
        key) and its identity as it was read. None when it changed meanwhile (it settles again) or a stop
        came while reading (it is queued again)."""
        key = settings_key(config.engine, config.output)
        if job.sha256 is not None and job.identity is not None:
            if job.settings_key != key:
                self.store.set_content(job.id, sha256=job.sha256, settings_key=key)
            return self.store.get(job.id) or job
        content = files.read_content(Path(job.path), keep_going=lambda: not self._stop.is_set())
        if content is None:
            self.store.requeue(job.id, interrupted=True)
            return None
        if not content.steady or self.finisher.source_change(job, content.info) is not None:
            self.router.changed_before_start(job, config)
            return None
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
            files.remove_tree(self.work_dir(job.id))
        self.store.set_settings(job.id, settings_json(config.engine, config.output))
        running = Running(job, control, started=self._clock(), store=self.store, notifier=self._notifier,
                          on_status=self._on_status, clock=self._clock)
        with self._lock:
            self._running[job.id] = running
            if self._stop.is_set():
                running.control.abort("stopped")
            if self.pause_reason is not None:
                running.control.pause()
        resumed_at = job.frames_done / job.frames_total if job.frames_total and job.frames_done else None
        logger.info("job {} started: {} (attempt {} of {}{})", job.id, job.relpath, job.attempts,
                    config.daemon.max_attempts, f", resuming near {resumed_at:.0%}" if resumed_at else "")
        self._notifier.started(job.id, job.name, resumed_at=resumed_at)
        return running

    def _duplicate(self, job: Job, config: Config) -> bool:
        """Same content, same settings, and the earlier output still there: give it this job's name."""
        for earlier in self.store.done_with_content(job):
            if earlier.output and Path(earlier.output).is_file():
                final = self.finisher.publish_copy(job, earlier, config)
                logger.info("job {}: {} has the same content as job {} and the same settings; its output {} is "
                            "also {}", job.id, job.relpath, earlier.id, earlier.output, final)
                self._notifier.done(job.id, job.name, final.name, 0.0)
                return True
        return False

    def _interrupted(self, running: Running, config: Config) -> None:
        job = running.job
        if running.cancel_requested:
            self.finisher.remove_work(job)
            self.store.finish(job.id, "cancelled", error="cancelled")
            logger.info("job {} cancelled while running: {} (the source stays at {})", job.id, job.name, job.path)
            self._notifier.warning(f"{job.name}: cancelled")
            return
        running.store_progress()
        self.store.requeue(job.id, interrupted=True)
        if not config.resume.enabled:
            files.remove_tree(self.work_dir(job.id))
        done = running.progress.fraction if running.progress else 0.0
        logger.info("job {} interrupted at {:.0%}: {}; it {} at the next start", job.id, done, job.name,
                    "resumes from its last checkpoint" if config.resume.enabled else "starts over")

    def _succeed(self, running: Running, staged: Path, report: PipelineReport | None, config: Config) -> None:
        job = running.job
        if report is not None and report.extra.get("workers"):
            self.store.set_workers(job.id, report.extra["workers"])  # before the job shows as done
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
        self._notifier.done(job.id, job.name, final.name, seconds)

    # --- start-up --------------------------------------------------------------------------------

    def recover(self) -> None:
        """After a crash or kill: requeue running jobs, drop stale work, finish moves cut short."""
        config = self._config()
        for job in self.store.recover_running():
            if not config.resume.enabled:
                files.remove_tree(self.work_dir(job.id))
            logger.warning("job {} was interrupted by a crash or kill: {}; queued again, {}", job.id, job.name,
                           "it resumes from its last checkpoint" if config.resume.enabled else "it starts over")
        jobs = self.store.jobs()
        self.finisher.remove_stale_work({job.id for job in jobs if job.state in ("queued", "running")})
        self.finisher.recover_moves(jobs, config)
