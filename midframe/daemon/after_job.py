"""Commands run after a job is done or failed (``notifications.on_done`` / ``on_failed``): refresh a
media library, copy the result somewhere, tell another program.

A subscriber of the job events: the commands run one after another on a thread of their own, never
on the worker's, each for at most ``notifications.command_timeout_s`` (then it is killed with its
process group), with the job's paths in the environment (:data:`ENV_NAMES`). No shell is involved:
a command is a list of words (a string is split like a shell would, without expanding anything); for
shell features name the shell (``["sh", "-c", "..."]``). What a command prints is logged, and so is its
exit status; the command line itself is logged by its program's name only, since its arguments may
hold a token (a Plex token, an API key).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from loguru import logger

from midframe.config import NotificationsConfig
from midframe.daemon.jobs.events import Event
from midframe.daemon.jobs.finishing import ERROR_SUFFIX
from midframe.daemon.sinks import QueuedSink
from midframe.daemon.store.records import Job
from midframe.engine import process_group_options

OUTPUT_LIMIT = 4000  # characters of a command's output that are logged
ENV_NAMES = ("MIDFRAME_EVENT", "MIDFRAME_JOB_ID", "MIDFRAME_NAME", "MIDFRAME_STATE", "MIDFRAME_SOURCE",
             "MIDFRAME_OUTPUT", "MIDFRAME_OUTPUT_DIR", "MIDFRAME_ERROR", "MIDFRAME_ERROR_FILE")


def job_environment(event: str, job: Job) -> dict[str, str]:
    """What a command learns about the job: paths as they are now (the source in done/ or failed/,
    the output in the outbox); empty strings for what the job does not have."""
    error_file = job.path + ERROR_SUFFIX if job.state == "failed" and os.path.exists(job.path + ERROR_SUFFIX) else ""
    return {
        "MIDFRAME_EVENT": event,
        "MIDFRAME_JOB_ID": str(job.id),
        "MIDFRAME_NAME": job.name,
        "MIDFRAME_STATE": job.state,
        "MIDFRAME_SOURCE": job.path,
        "MIDFRAME_OUTPUT": job.output or "",
        "MIDFRAME_OUTPUT_DIR": str(Path(job.output).parent) if job.output else "",
        "MIDFRAME_ERROR": (job.error or "") if job.state != "done" else "",
        "MIDFRAME_ERROR_FILE": error_file,
    }


class AfterJobCommands:
    """Runs the commands of ``notifications.on_done`` or ``on_failed`` for one event (its job looked up
    with ``job``)."""

    def __init__(self, settings: Callable[[], NotificationsConfig], *, job: Callable[[int], Job | None],
                 environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._job = job
        self._environ = environ

    def commands(self, kind: str) -> tuple[tuple[str, ...], ...]:
        settings = self._settings()
        return settings.on_done if kind == "done" else settings.on_failed if kind == "failed" else ()

    def wanted(self, event: Event) -> bool:
        return event.job_id is not None and bool(self.commands(event.kind))

    def deliver(self, event: Event) -> None:
        job = self._job(event.job_id) if event.job_id is not None else None
        if job is None:
            return
        env = {**(os.environ if self._environ is None else self._environ), **job_environment(event.kind, job)}
        timeout = self._settings().command_timeout_s
        for command in self.commands(event.kind):
            run_command(list(command), env=env, timeout_s=timeout, what=f"job {job.id} {event.kind}")


def run_command(command: list[str], *, env: Mapping[str, str], timeout_s: float, what: str) -> int | None:
    """Run ``command`` to its end or for ``timeout_s``; log its output and outcome. Its exit status,
    None when it could not start or was killed."""
    program = Path(command[0]).name
    try:
        process = subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, **process_group_options())
    except OSError as exc:
        logger.warning("after-job command {} ({}) could not start: {}", program, what, exc.strerror or exc)
        return None
    try:
        output, _ = process.communicate(timeout=timeout_s)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        _kill(process)
        try:
            output, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild of its own session still holds the pipe
            output = b""
        code = None
    text = output.decode(errors="replace").strip() if output else ""
    if len(text) > OUTPUT_LIMIT:
        text = text[:OUTPUT_LIMIT] + "…"
    if text:
        logger.info("after-job command {} ({}) said: {}", program, what, text)
    if code is None:
        logger.warning("after-job command {} ({}) ran longer than notifications.command_timeout_s ({:g} s) and "
                       "was killed", program, what, timeout_s)
    elif code != 0:
        logger.warning("after-job command {} ({}) exited with status {}", program, what, code)
    else:
        logger.info("after-job command {} ({}) finished", program, what)
    return code


def _kill(process: subprocess.Popen[bytes]) -> None:
    if sys.platform == "win32":
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its children too: a script's curl must not linger
    except ProcessLookupError:
        pass


def after_job_sink(settings: Callable[[], NotificationsConfig], *, job: Callable[[int], Job | None]) -> QueuedSink:
    """The Notifier's subscriber that runs the after-job commands from a thread of its own."""
    commands = AfterJobCommands(settings, job=job)
    return QueuedSink("midframe-after-job", commands.deliver, wanted=commands.wanted)
