"""The worker: when jobs run. Its thread, claiming the next job (one at a time, or several in threads of
their own with a render farm's slots), the jobs under way, the pauses (a person's and the automatic
ones) and what the control API asks of it (pause, resume, cancel, retry, the current job), and start-up
recovery after a crash. What happens to one claimed job, from its checks to its outcome, is
:mod:`midframe.daemon.jobs.flow`; it hands back the router's decision (:mod:`midframe.daemon.jobs.routes`)
and the worker applies what is left to it (:meth:`Worker.apply`). Everything the worker needs comes in
one bundle (:class:`midframe.daemon.jobs.services.JobServices`); it tells what happens by job events
(``services.events``), never by calling a notifier.

A job database that cannot be written (``StoreUnwritable``: its disk full, say) pauses the worker
(``daemon.state_dir (...): the disk is full``): a job it stopped stays running on record and is shown
as the current job, held, so ``status`` and ``jobs`` agree; once a write test in the database works
again (looked at every 2 s) the pause lifts, the job is queued again and resumes from its checkpoint.
Moves of sources into done_dir or failed_dir that failed (a full disk there) are tried again at every
rescan of the inbox (``daemon.rescan_seconds``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import Config
from midframe.daemon.jobs.finishing import Finisher
from midframe.daemon.jobs.flow import JobFlow
from midframe.daemon.jobs.outbox_space import Room
from midframe.daemon.jobs.pauses import FARM, SETTINGS, Pause, Pauses
from midframe.daemon.jobs.routes import Decision, Router
from midframe.daemon.jobs.running import UnderWay, job_status
from midframe.daemon.jobs.services import Convert, JobServices, MakeInterpolator, pipeline_convert
from midframe.daemon.jobs.store_pause import store_pause
from midframe.daemon.store.records import Job
from midframe.errors import MediaError, StoreUnwritable
from midframe.fs import folders
from midframe.loop_thread import LoopThread

__all__ = ["Convert", "JobServices", "MakeInterpolator", "Worker"]

_pipeline_convert = pipeline_convert  # the name callers used before the bundle


class Worker:
    """Runs jobs from ``services.store`` one at a time, in its own thread (``start``) or by ``run_once``."""

    def __init__(self, services: JobServices, *, idle_wait_s: float = 1.0, recheck_s: float = 15.0) -> None:
        self.services = services
        self.store = services.store
        self.paths = services.paths
        self._wake = threading.Event()
        self.finisher = Finisher(services.store, services.paths, ffmpeg=services.ffmpeg)
        self.work_root = self.finisher.work_root
        self.pauses = Pauses(services.store, clock=services.clock, recheck_s=recheck_s)
        self.underway = UnderWay(paused=lambda: bool(self.pauses.active()))
        self.router = Router(services, self.finisher)
        self.room = Room(services.store, services.paths.outbox, free_bytes=services.free_bytes,
                         events=services.events, wall_clock=services.wall_clock)
        self.flow = JobFlow(services, self.finisher, self.router, self.room, self.underway)
        self._config = services.config
        self._events = services.events
        self._clock = services.clock
        self._moves_at = float("-inf")
        self._stranded: dict[int, Job] = {}  # stopped by an unwritable store, still running on record
        self.idle_wait_s = idle_wait_s
        self._lock = threading.Lock()
        self._claimed = 0  # jobs claimed and not yet finished (a claimed job is running before it is under way)
        self._job_threads: list[threading.Thread] = []
        self._thread: threading.Thread | None = None

    # --- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = _WorkerLoop(self)
        self._thread.start()

    def _prepare(self) -> None:
        """Before the first job, on the worker's thread: fetch what the engine needs (its weights)."""
        prepare = self.services.prepare
        if prepare is None:
            return
        try:
            prepare()
        except Exception:
            logger.exception("preparing the engine failed; the settings check says what is missing")
        if self.pauses.recheck(self._config(), force=True):
            self._after_lift()

    def wake(self) -> None:
        self._wake.set()

    def idle(self, timeout: float) -> None:
        """Wait for work: until ``wake()`` or ``timeout`` seconds."""
        self._wake.wait(timeout)
        self._wake.clear()

    def request_stop(self) -> None:
        """Stop after the current batch; the job goes back to the queue and resumes at the next start."""
        self.underway.stop()
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
            self._events.paused("paused on request")

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
        problems = self.services.check_settings(config)
        if problems:
            self._hold(Pause(SETTINGS, "; ".join(problems), self._settings_recheck))
        elif self.pauses.remove(SETTINGS):
            self._after_lift()
        return problems

    def _settings_recheck(self, config: Config) -> str | None:
        return "; ".join(self.services.check_settings(config)) or None

    def apply(self, decision: Decision | None) -> None:
        """What a route left to the worker: hold its pause, look for the next job at once."""
        if decision is None:
            return
        if decision.hold is not None:
            self._hold(decision.hold)
        if decision.wakes:
            self._wake.set()

    def _hold(self, pause: Pause) -> None:
        if self.pauses.add(pause):
            self._hold_running()
            logger.warning("paused: {}", pause.reason)
            self._events.paused(pause.reason)

    def _hold_running(self) -> None:
        for running in self.underway.hold():
            try:
                running.store_progress()
            except StoreUnwritable:
                pass  # the job stops at its next batch (Running.on_progress) and the worker pauses for it

    def _after_lift(self) -> None:
        if self.pauses.active():
            logger.info("still paused: {}", self.pause_reason)
            return
        self.underway.release()
        logger.info("resumed")
        self._events.resumed()
        self._wake.set()

    # --- cancel, retry, status -----------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        running = self.underway.cancel(job_id)
        if running is not None:
            return running
        job = self.store.cancel(job_id)
        logger.info("job {} cancelled: {}", job.id, job.name)
        return job

    def retry(self, job_id: int) -> Job:
        job = self.store.retry(job_id)
        Path(job.path + ".error.txt").unlink(missing_ok=True)
        logger.info("job {} queued again: {}", job.id, job.name)
        self._wake.set()
        return job

    def fail_early(self, job_id: int, error: MediaError) -> bool:
        """A file found not to be a video as it settled (``engine.probe.sniff``): its outcome now, not at
        its turn behind a long job. The outcome table decides as for any job: a file that looks cut short
        and changed lately is a copy still arriving and settles again. False when the job was no longer
        queued (the worker took it meanwhile, and its own probe says the same)."""
        job = self.store.claim(job_id=job_id)
        if job is None:
            return False
        config = self._config()
        logger.info("job {}: {} is looked at as it settled: {}", job.id, job.relpath, error.reason)
        self.apply(self.router.route(job, error, config.effective(job.profile) if job.profile in config.profiles
                                     else config))
        return True

    def current(self) -> dict[str, Any] | None:
        """The running job (the one started first, when several run) in ``status --json``'s ``current``
        shape; else a job stopped by an unwritable store, as its record has it (running, held)."""
        running = self.underway.first()
        with self._lock:
            stranded = min(self._stranded, default=None)
        if running is not None:
            return running.status()
        if stranded is not None:
            return job_status(self.store.get(stranded) or self._stranded[stranded])
        return None

    # --- an unwritable job database ----------------------------------------------------------------

    def _store_unwritable(self, error: StoreUnwritable) -> None:
        self._hold(store_pause(error, paths=self.paths, store=self.store, free_bytes=self.services.free_bytes))

    def _requeue_stranded(self) -> bool:
        """Queue again the jobs an unwritable store stopped; False if it still cannot be written."""
        with self._lock:
            stranded = list(self._stranded.values())
        for job in stranded:
            try:
                latest = self.store.get(job.id)
                if latest is not None and latest.state == "running":
                    self.store.requeue(job.id, interrupted=True)
                    logger.info("job {} queued again: {}; it resumes from its last checkpoint", job.id, job.name)
            except StoreUnwritable as exc:
                self._store_unwritable(exc)
                return False
            with self._lock:
                self._stranded.pop(job.id, None)
        return True

    def _retry_moves(self, config: Config) -> None:
        """Sources whose move into done_dir or failed_dir failed (a full disk): tried again now and then."""
        if not self.finisher.moves_pending or self._clock() < self._moves_at:
            return
        self._moves_at = self._clock() + config.daemon.rescan_seconds
        self.finisher.recover_moves(self.store.jobs(), config, retrying=True)

    # --- claiming the next job ----------------------------------------------------------------

    def run_once(self, *, now: float | None = None) -> bool:
        """Claim and run the next job unless paused or stopping; returns whether there was one.
        ``now`` is the wall-clock time a job's ``not_before`` is compared with."""
        if self.underway.stopping:
            return False
        config = self._config()
        if self.pauses.recheck(config):
            self._after_lift()
        if self.pauses.active():
            return False
        if not self._requeue_stranded():
            return False
        self._retry_moves(config)
        check_farm = self.services.check_farm
        farm = check_farm(config)
        if farm is not None:  # the render farm's scheduler is away: the jobs wait for it in the queue
            self._hold(Pause(FARM, farm, check_farm))
            return False
        slots = max(1, self.services.slots(config))
        try:
            with self._lock:
                if self._claimed >= slots:
                    return False
                job = self.store.claim(now=self.services.wall_clock() if now is None else now)
                self.room.claimed(job)
                if job is None:
                    return False
                self._claimed += 1
        except StoreUnwritable as exc:
            self._store_unwritable(exc)
            return False
        if slots == 1:
            self._work(job, config)
        else:  # several jobs at once (a render farm's farm.max_jobs): each in a thread of its own
            thread = threading.Thread(target=self._work, args=(job, config), name=f"midframe-job-{job.id}", daemon=True)
            self._job_threads = [*[t for t in self._job_threads if t.is_alive()], thread]
            thread.start()
        return True

    def _work(self, job: Job, config: Config) -> None:
        try:
            self.apply(self.flow.run(job, config))
        except StoreUnwritable as exc:
            with self._lock:
                self._stranded[job.id] = job
            self._store_unwritable(exc)
        finally:
            with self._lock:
                self._claimed -= 1
            self._wake.set()

    def work_dir(self, job_id: int) -> Path:
        return self.finisher.work_dir(job_id)

    # --- start-up --------------------------------------------------------------------------------

    def recover(self) -> None:
        """After a crash or kill: requeue running jobs, drop stale work, finish moves cut short."""
        config = self._config()
        for job in self.store.recover_running():
            if not config.resume.enabled:
                folders.remove_tree(self.work_dir(job.id))
            logger.warning("job {} was interrupted by a crash or kill: {}; queued again, {}", job.id, job.name,
                           "it resumes from its last checkpoint" if config.resume.enabled else "it starts over")
        jobs = self.store.jobs()
        self.finisher.remove_stale_work({job.id for job in jobs if job.state in ("queued", "running")})
        self.finisher.recover_moves(jobs, config)


class _WorkerLoop(LoopThread):
    """The worker's thread: one claim (``Worker.run_once``) per iteration, straight on while there is
    work, else a wait that a wake (a new file, a resume, a stop) cuts short."""

    def __init__(self, worker: Worker) -> None:
        # A daemon thread: a pipeline that ignores the stop request must not keep the process alive.
        super().__init__(name="midframe-worker", period_s=worker.idle_wait_s, daemon=True)
        self._worker = worker
        self._worked = False

    def should_keep_running(self) -> bool:
        return super().should_keep_running() and not self._worker.underway.stopping

    def on_thread_start(self) -> None:
        self._worker._prepare()

    def iterate(self, now: float) -> None:
        self._worked = False
        self._worked = self._worker.run_once()

    def wait(self, timeout: float) -> None:
        if not self._worked:
            self._worker.idle(timeout)
