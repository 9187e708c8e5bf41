"""The worker: one job at a time, claim -> pipeline -> outcome.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import Config, EngineConfig, Paths
from midframe.daemon import files
from midframe.daemon.finishing import Finisher
from midframe.daemon.naming import estimate_output_bytes, output_extension, settings_json, settings_key
from midframe.daemon.notify import Notifier, format_duration
from midframe.daemon.outcomes import Outcome
from midframe.daemon.pauses import DISK, FARM, SETTINGS, Pause, Pauses
from midframe.daemon.routing import Router
from midframe.daemon.store import Job, JobStore
from midframe.engine.job import JobControl, PipelineReport, Progress
from midframe.errors import Aborted

Convert = Callable[..., PipelineReport]
MakeInterpolator = Callable[[EngineConfig], Any]


def _pipeline_convert(*args: Any, **kwargs: Any) -> PipelineReport:
    from midframe.engine.pipeline import convert

    return convert(*args, **kwargs)


@dataclass
class _Running:
    job: Job
    control: JobControl
    started: float
    progress: Progress | None = None
    cancel_requested: bool = False
    stored_at: float = float("-inf")
    status_at: float = float("-inf")


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
                             settings_recheck=self._settings_recheck, space_recheck=self._disk_recheck,
                             resettle=resettle, writing=writing, wall_clock=wall_clock, wake=self.wake,
                             farm_recheck=check_farm)
        self._config = config
        self._notifier = notifier
        self._ffmpeg = ffmpeg
        self._make_interpolator = make_interpolator
        self._convert = convert
        self._prepare = prepare
        self._check = check_settings
        self._check_farm = check_farm
        self._slots = slots
        self._free_bytes = free_bytes
        self._on_status = on_status
        self._clock = clock
        self._wall = wall_clock
        self._idle_wait_s = idle_wait_s
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
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
        return self.pauses.reason

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
            self._store_progress(running)

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
        if running is None:
            return None
        job, progress = running.job, running.progress
        done = progress.frames_done if progress else job.frames_done
        total = progress.frames_total if progress else job.frames_total
        eta = progress.eta_s if progress else None
        return {
            "id": job.id,
            "name": job.name,
            "frames_done": done,
            "frames_total": total,
            "progress": round(done / total, 4) if total else 0.0,
            "fps": round(progress.fps, 2) if progress else 0.0,
            "elapsed_s": round(self._clock() - running.started, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }

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
        if identified is None:
            self.store.requeue(job.id, interrupted=True)     # stopped while reading it
            return
        job = identified
        if self._duplicate(job, config):
            return
        shortage = self._disk_shortage(job, config)
        if shortage:
            self.store.requeue(job.id, interrupted=True)
            self._hold(Pause(DISK, shortage, self._disk_recheck))
            return
        # Chosen once: a resumed job finishes into the container it started with.
        staged = Path(job.staged or self.finisher.staged_name(job, output_extension(Path(job.name), config.output)))
        if not job.staged:
            self.store.set_staged(job.id, str(staged))
            job = self.store.get(job.id) or job
        work_dir = self.work_dir(job.id)
        if not config.resume.enabled:
            files.remove_tree(work_dir)
        self.store.set_settings(job.id, settings_json(config.engine, config.output))
        running = _Running(job, JobControl(), started=self._clock())
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
        try:
            report = None
            if not staged.exists():
                staged.parent.mkdir(parents=True, exist_ok=True)
                report = self._convert(
                    Path(job.path), staged, work_dir=work_dir, engine=config.engine, output=config.output,
                    resume=config.resume, make_interpolator=self._make_interpolator, ffmpeg=self._ffmpeg,
                    control=running.control, on_progress=lambda progress: self._on_progress(running, progress),
                )
        except Aborted:
            self._interrupted(running, config)
        except Exception as exc:
            self.router.route(job, exc, config)
        else:
            self._succeed(running, staged, report, config)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _identify(self, job: Job, config: Config) -> Job | None:
        """Record the whole source's SHA-256 and the settings key: what makes a later job a duplicate.
        None when a stop came while reading."""
        key = settings_key(config.engine, config.output)
        if job.sha256 is None or job.settings_key != key:
            digest = job.sha256 or files.content_sha256(Path(job.path), keep_going=lambda: not self._stop.is_set())
            if digest is None:
                return None
            self.store.set_content(job.id, sha256=digest, settings_key=key)
            job = self.store.get(job.id) or job
        return job

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

    def _on_progress(self, running: _Running, progress: Progress) -> None:
        """Called by the pipeline; reporting trouble is logged, never allowed to fail the job."""
        try:
            self._report(running, progress)
        except Exception:
            logger.exception("job {}: could not report progress", running.job.id)

    def _report(self, running: _Running, progress: Progress) -> None:
        running.progress = progress
        now = self._clock()
        job = running.job
        if now - running.stored_at >= 1.0 or progress.frames_done >= progress.frames_total:
            running.stored_at = now
            self._store_progress(running)
        if now - running.status_at >= 5.0:
            running.status_at = now
            self._on_status(f"working: {job.name} {progress.fraction:.0%} ETA {format_duration(progress.eta_s)}")
        self._notifier.progress(job.id, job.name, progress)

    def _store_progress(self, running: _Running) -> None:
        progress = running.progress
        if progress is not None:
            self.store.set_progress(running.job.id, frames_done=progress.frames_done,
                                    frames_total=progress.frames_total)

    def _interrupted(self, running: _Running, config: Config) -> None:
        job = running.job
        if running.cancel_requested:
            self.finisher.remove_work(job)
            self.store.finish(job.id, "cancelled", error="cancelled")
            logger.info("job {} cancelled while running: {} (the source stays at {})", job.id, job.name, job.path)
            self._notifier.warning(f"{job.name}: cancelled")
            return
        self._store_progress(running)
        self.store.requeue(job.id, interrupted=True)
        if not config.resume.enabled:
            files.remove_tree(self.work_dir(job.id))
        done = running.progress.fraction if running.progress else 0.0
        logger.info("job {} interrupted at {:.0%}: {}; it {} at the next start", job.id, done, job.name,
                    "resumes from its last checkpoint" if config.resume.enabled else "starts over")

    def _succeed(self, running: _Running, staged: Path, report: PipelineReport | None, config: Config) -> None:
        job = running.job
        final = self.finisher.publish(job, staged, report, config)
        if report is not None:
            self.store.set_progress(job.id, frames_done=report.frames_out, frames_total=report.frames_out,
                                    resumed_from=report.resumed_from_frame)
            if report.extra.get("workers"):
                self.store.set_workers(job.id, report.extra["workers"])
        seconds = self._clock() - running.started
        details = ""
        if report is not None:
            details = f" ({report.frames_in} -> {report.frames_out} frames, {report.engine} on {report.device}"
            details += f", resumed at frame {report.resumed_from_frame})" if report.resumed_from_frame else ")"
        logger.success("job {} done: {} -> {} in {}{}", job.id, job.relpath, final, format_duration(seconds), details)
        self._notifier.done(job.id, job.name, final.name, seconds)

    # --- disk space -----------------------------------------------------------------------------

    def _needed_bytes(self, job: Job, config: Config) -> int:
        return estimate_output_bytes(job.size, config.engine, config.output) + config.daemon.min_free_mb * (1 << 20)

    def _disk_shortage(self, job: Job, config: Config) -> str:
        """Empty when the outbox's disk has room for the job, else what is free and what is needed."""
        needed = self._needed_bytes(job, config)
        free = self._free_bytes(self.paths.outbox)
        if free >= needed:
            return ""
        return (f"outbox ({self.paths.outbox}): {free >> 20} MiB free, about {needed >> 20} MiB needed for "
                f"{job.name}; free some space there (midframe resumes by itself)")

    def _disk_recheck(self, config: Config) -> str | None:
        queued = [job for job in self.store.jobs() if job.state == "queued"]
        if not queued:
            return None
        return self._disk_shortage(min(queued, key=lambda job: (job.queue_seq, job.id)), config) or None

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
        active = {job.id for job in jobs if job.state in ("queued", "running")}
        if self.work_root.is_dir():
            for entry in self.work_root.iterdir():
                number = entry.name.removeprefix("job-").split("-")[0].split(".")[0]
                if not (number.isdigit() and int(number) in active):
                    logger.info("removing stale work {}", entry)
                    files.remove_tree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
        self.finisher.recover_moves(jobs, config)
