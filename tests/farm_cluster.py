"""A real Dask scheduler and real ``midframe farm worker`` processes on localhost, for the farm's tests.

Workers run the real blend engine, slowed by ``delay_s`` a batch (``tests.engine_helpers:create``) so
that a test can kill one while it is making a segment.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.daemon_process import ROOT, wait_for

# The CLI with the blend engine replaced by its slowed-down twin (the same frames).
SLOW_BLEND = ("import dataclasses, sys, midframe.engine.interpolators as i; "
              "i.ENGINES['blend'] = dataclasses.replace(i.ENGINES['blend'], factory='tests.engine_helpers:create'); "
              "from midframe.cli import main; sys.exit(main(sys.argv[1:]))")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class FarmWorker:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def address(self) -> str:
        found = re.search(r"midframe farm worker (\S+) ready", self.log())
        assert found, f"the worker has not said its address yet:\n{self.log()}"
        return found.group(1)

    def segments_started(self) -> int:
        return self.log().count("making segment")

    def segments_made(self) -> int:
        return self.log().count("made segment")

    def kill(self) -> None:
        """SIGKILL to the worker and its ffmpeg children, as a machine that loses power."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Cluster:
    root: Path
    delay_s: float
    port: int = field(default_factory=free_port)
    scheduler: subprocess.Popen | None = None
    workers: list[FarmWorker] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["MIDFRAME_TEST_DELAY"] = str(self.delay_s)
        env["OMP_NUM_THREADS"] = "1"
        env["OPENCV_FOR_THREADS_NUM"] = "1"  # one thread per worker process, as the farm benchmark states
        return env

    def start_scheduler(self) -> None:
        log = self.root / "scheduler.log"
        log.unlink(missing_ok=True)
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "midframe", "farm", "scheduler", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=self._env(), stdin=subprocess.DEVNULL, stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "listening at" in log.read_text(errors="replace"), timeout=60, what="the scheduler")

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(10)

    def start_worker(self, config: dict | None = None, *, wait: bool = True,
                     env: dict[str, str] | None = None) -> FarmWorker:
        number = len(self.workers)
        config_path = self.root / f"worker-{number}.yaml"
        base = {"engine": {"name": "blend", "device": "cpu"}, "logging": {"level": "INFO"}}
        config_path.write_text(yaml.safe_dump({**base, **(config or {})}), encoding="utf-8")
        log = self.root / f"worker-{number}.log"
        proc = subprocess.Popen(
            [sys.executable, "-c", SLOW_BLEND, "farm", "worker", "--scheduler", self.address, "--config",
             str(config_path), "--nthreads", "1"],
            cwd=ROOT, env={**self._env(), **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115
        worker = FarmWorker(proc, log)
        self.workers.append(worker)
        if wait:
            wait_for(lambda: "ready" in worker.log() or proc.poll() is not None, timeout=60,
                     what=f"farm worker {number} (log: {log})")
            assert proc.poll() is None, worker.log()
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self.scheduler is not None and self.scheduler.poll() is None:
            os.killpg(self.scheduler.pid, signal.SIGKILL)
            self.scheduler.wait(10)
