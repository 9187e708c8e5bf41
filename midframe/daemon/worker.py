"""The worker: one job at a time, claim -> pipeline -> finalize.

A job's work lives in ``<outbox>/.midframe-work/job-<id>`` (hidden); the finished video is first
``job-<id>-result<ext>`` beside it, then takes its real name in the outbox (never overwriting), and only
then is the job on record as done. Every step is ordered so that a crash at any point either repeats
the step at the next start or finds it done (see :meth:`Worker.recover`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import Config, EngineConfig, Paths
from midframe.daemon import files
from midframe.daemon.naming import error_text, estimate_output_bytes, output_extension, output_name
from midframe.daemon.notify import Notifier, format_duration
from midframe.daemon.store import Job, JobStore
from midframe.engine.job import JobControl, PipelineReport, Progress
from midframe.errors import Aborted, EngineError, MediaError, OutputError, TransientError

PAUSE_FLAG = "paused"
PAUSE_REASONS = {
    "user": "paused on request",
    "disk": "paused: not enough free disk space for the next video",
    "output": "paused: the outbox cannot be written",
}
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
        free_bytes: Callable[[Path], int] = files.free_bytes,
        on_status: Callable[[str], None] = lambda text: None,
        clock: Callable[[], float] = time.monotonic,
        idle_wait_s: float = 1.0,
    ) -> None:
        self.store = store
        self.paths = paths
        self.work_root = paths.outbox / files.WORK_DIR_NAME
        self._config = config
        self._notifier = notifier
        self._ffmpeg = ffmpeg
        self._make_interpolator = make_interpolator
        self._convert = convert
        self._prepare = prepare
        self._free_bytes = free_bytes
        self._on_status = on_status
        self._clock = clock
        self._idle_wait_s = idle_wait_s
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._disk_checked_at = float("-inf")

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
                logger.exception("preparing the engine failed; jobs will report the error")
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
            if self._running is not None:
                self._running.control.abort("stopped")
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # --- pause, cancel, retry, status ------------------------------------------------------------

    @property
    def pause_reason(self) -> str | None:
        return self.store.get_flag(PAUSE_FLAG)

    def pause(self, reason: str = "user", detail: str = "") -> None:
        already = self.pause_reason
        self.store.set_flag(PAUSE_FLAG, reason)
        with self._lock:
            running = self._running
            if running is not None:
                running.control.pause()
        if running is not None:
            self._store_progress(running)
        if already != reason:
            message = PAUSE_REASONS.get(reason, reason) + (f" ({detail})" if detail else "")
            logger.info("{}", message)
            self._notifier.paused(message)

    def resume(self) -> None:
        was = self.pause_reason
        self.store.set_flag(PAUSE_FLAG, None)
        with self._lock:
            if self._running is not None:
                self._running.control.resume()
        if was is not None:
            logger.info("resumed")
            self._notifier.resumed()
        self._wake.set()

    def cancel(self, job_id: int) -> Job:
        with self._lock:
            running = self._running
            if running is not None and running.job.id == job_id:
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
        """The running job in ``status --json``'s ``current`` shape."""
        running = self._running
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
        """Claim and run the next job unless paused or stopping; returns whether there was one."""
        if self._stop.is_set():
            return False
        reason = self.pause_reason
        if reason is not None:
            if reason == "disk":
                self._resume_when_disk_frees()
            return False
        job = self.store.claim(now=now)
        if job is None:
            return False
        try:
            self._process(job)
        except Exception as exc:
            logger.exception("job {}: internal error", job.id)
            latest = self.store.get(job.id)
            if latest is not None and latest.state == "running":
                self._retry_or_fail(latest, f"internal error: {type(exc).__name__}: {exc}", self._config())
        return True

    def work_dir(self, job_id: int) -> Path:
        return self.work_root / f"job-{job_id}"

    def _process(self, job: Job) -> None:
        config = self._config()
        source = Path(job.path)
        try:
            info = os.stat(source)
        except OSError:
            self._finish_cancelled(job, f"the file is no longer at {source}")
            return
        if (info.st_size, info.st_mtime) != (job.size, job.mtime):
            self._finish_cancelled(job, "the file changed after it was queued; the changed file is a new job")
            return
        earlier = self.store.done_with_fingerprint(job.fingerprint, exclude_id=job.id)
        if earlier is not None:
            self._finish_duplicate(job, earlier, config)
            return
        shortage = self._disk_shortage(job, config)
        if shortage:
            self.store.requeue(job.id, interrupted=True)
            self.pause("disk", shortage)
            return

        # Chosen once: a resumed job finishes into the container it started with.
        staged = Path(job.staged or self.work_root / f"job-{job.id}-result{output_extension(source, config.output)}")
        if not job.staged:
            self.store.set_staged(job.id, str(staged))
        work_dir = self.work_dir(job.id)
        if not config.resume.enabled:
            files.remove_tree(work_dir)
        running = _Running(job, JobControl(), started=self._clock())
        with self._lock:
            self._running = running
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
                    source, staged, work_dir=work_dir, engine=config.engine, output=config.output,
                    resume=config.resume, make_interpolator=self._make_interpolator, ffmpeg=self._ffmpeg,
                    control=running.control, on_progress=lambda progress: self._on_progress(running, progress),
                )
        except Aborted:
            self._interrupted(running, config)
        except MediaError as exc:
            self._fail(job, exc.reason, config)
        except OutputError as exc:
            logger.error("job {}: cannot write the output: {}", job.id, exc)
            self.store.requeue(job.id, error=str(exc), interrupted=True)
            self.pause("output")
            self._notifier.warning(f"cannot write the output: {exc}")
        except (TransientError, EngineError) as exc:
            self._retry_or_fail(job, f"{type(exc).__name__}: {exc}", config)
        except Exception as exc:
            logger.exception("job {}: unexpected error", job.id)
            self._retry_or_fail(job, f"unexpected error: {type(exc).__name__}: {exc}", config)
        else:
            self._succeed(running, staged, report, config)
        finally:
            with self._lock:
                self._running = None

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
            self._remove_work(job)
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

    def _retry_or_fail(self, job: Job, reason: str, config: Config) -> None:
        if job.attempts < config.daemon.max_attempts:
            self.store.requeue(job.id, error=reason)
            logger.warning("job {} attempt {} of {} failed: {}; trying again", job.id, job.attempts,
                           config.daemon.max_attempts, reason)
            return
        self._fail(job, reason, config)

    # --- finishing ------------------------------------------------------------------------------

    def _remove_work(self, job: Job) -> None:
        files.remove_tree(self.work_dir(job.id))
        if job.staged:
            Path(job.staged).unlink(missing_ok=True)

    def _fail(self, job: Job, reason: str, config: Config) -> None:
        self._remove_work(job)
        job = self.store.finish(job.id, "failed", error=reason)
        self._move_to_failed(job, config)
        logger.error("job {} failed: {}: {}", job.id, job.relpath, reason)
        self._notifier.failed(job.id, job.name, reason)

    def _move_to_failed(self, job: Job, config: Config) -> None:
        source = Path(job.path)
        if not source.exists():
            return
        target = files.move_no_clobber(source, self.paths.failed_dir / Path(job.relpath).parent)
        self.store.set_path(job.id, str(target))
        text = error_text(name=job.name, original=job.path, reason=job.error or "unknown", job_id=job.id,
                          attempts=job.attempts, max_attempts=config.daemon.max_attempts)
        error_file = target.with_name(target.name + ".error.txt")
        partial = error_file.with_name(f".{error_file.name}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, error_file)

    def _succeed(self, running: _Running, staged: Path, report: PipelineReport | None, config: Config) -> None:
        job = running.job
        source = Path(job.path)
        name = self._output_name(source, staged, report, config)
        folder = self.paths.outbox / Path(job.relpath).parent
        final = files.find_link(staged, folder, name) or files.move_no_clobber(staged, folder, name, keep=True)
        self.store.finish(job.id, "done", output=str(final))
        staged.unlink(missing_ok=True)
        if report is not None:
            self.store.set_progress(job.id, frames_done=report.frames_out, frames_total=report.frames_out,
                                    resumed_from=report.resumed_from_frame)
        self._dispose_source(job, config)
        seconds = self._clock() - running.started
        details = ""
        if report is not None:
            details = f" ({report.frames_in} -> {report.frames_out} frames, {report.engine} on {report.device}"
            details += f", resumed at frame {report.resumed_from_frame})" if report.resumed_from_frame else ")"
        logger.success("job {} done: {} -> {} in {}{}", job.id, job.relpath, final, format_duration(seconds), details)
        self._notifier.done(job.id, job.name, final.name, seconds)

    def _output_name(self, source: Path, staged: Path, report: PipelineReport | None, config: Config) -> str:
        if report is not None:
            fps_out: Fraction | str = report.fps_out
            engine = report.engine
        else:
            from midframe.engine.probe import probe

            fps_out = probe(staged, ffmpeg=self._ffmpeg).fps
            engine = config.engine.name
        factor = config.engine.factor if config.engine.target_fps is None else "x"
        return output_name(source, output=config.output, fps_out=fps_out, factor=factor, engine=engine)

    def _dispose_source(self, job: Job, config: Config) -> None:
        source = Path(job.path)
        if config.daemon.on_success == "keep" or not source.exists():
            return
        if config.daemon.on_success == "delete":
            source.unlink()
            logger.info("job {}: deleted the source {}", job.id, source)
            return
        target = files.move_no_clobber(source, self.paths.done_dir / Path(job.relpath).parent)
        self.store.set_path(job.id, str(target))

    def _finish_cancelled(self, job: Job, reason: str) -> None:
        self._remove_work(job)
        self.store.finish(job.id, "cancelled", error=reason)
        logger.warning("job {} dropped: {}: {}", job.id, job.relpath, reason)

    def _finish_duplicate(self, job: Job, earlier: Job, config: Config) -> None:
        self.store.finish(job.id, "done", output=earlier.output, duplicate_of=earlier.id)
        self._dispose_source(job, config)
        logger.info("job {}: {} has the same content as job {}, already converted to {}; not converting it again",
                    job.id, job.relpath, earlier.id, earlier.output)
        self._notifier.warning(f"{job.name} was converted before: {Path(earlier.output or '').name}")

    # --- disk space -----------------------------------------------------------------------------

    def _needed_bytes(self, job: Job, config: Config) -> int:
        return estimate_output_bytes(job.size, config.engine, config.output) + config.daemon.min_free_mb * (1 << 20)

    def _disk_shortage(self, job: Job, config: Config) -> str:
        """Empty when the outbox's disk has room for the job, else what is free and what is needed."""
        needed = self._needed_bytes(job, config)
        free = self._free_bytes(self.paths.outbox)
        if free >= needed:
            return ""
        text = f"{free >> 20} MiB free on {self.paths.outbox}, about {needed >> 20} MiB needed for {job.name}"
        logger.warning("job {}: {}; free some space, then `midframe resume` (or wait: it resumes by itself)",
                       job.id, text)
        return text

    def _resume_when_disk_frees(self) -> None:
        now = self._clock()
        if now - self._disk_checked_at < 10.0:
            return
        self._disk_checked_at = now
        queued = [job for job in self.store.jobs() if job.state == "queued"]
        if not queued:
            return
        nxt = min(queued, key=lambda job: (job.queue_seq, job.id))
        if self._free_bytes(self.paths.outbox) >= self._needed_bytes(nxt, self._config()):
            logger.info("there is enough disk space again")
            self.resume()

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
        elsewhere = (self.paths.done_dir, self.paths.failed_dir, self.paths.outbox)
        for job in jobs:
            source = Path(job.path)
            in_inbox = source.is_relative_to(self.paths.inbox) and not any(map(source.is_relative_to, elsewhere))
            if job.state not in ("done", "failed") or not in_inbox:
                continue
            if not source.exists() or (job.state == "done" and config.daemon.on_success == "keep"):
                continue
            logger.info("job {}: finishing the move of {} cut short by a crash", job.id, source)
            if job.state == "done":
                self._dispose_source(job, config)
            else:
                self._move_to_failed(job, config)
