"""The real daemon (``python -m midframe watch``) in a subprocess on temporary folders, for the
end-to-end tests and benchmarks/load.py."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from midframe.api.control import ControlClient
from midframe.daemon.lock import INBOX_LOCK_FILE
from midframe.errors import ControlError

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def wait_for(predicate: Callable[[], Any], *, timeout: float, step: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


class DaemonProcess:
    """One state dir and its folders under ``root``; ``start()`` runs a daemon on them (again and again)."""

    def __init__(self, root: Path, config: dict | None = None, *, env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.inbox = self.root / "inbox"
        self.outbox = self.root / "outbox"
        self.done = self.root / "done"
        self.failed = self.root / "failed"
        self.state = self.root / "state"
        self.logs = self.root / "logs"
        base = {
            "inbox": str(self.inbox),
            "outbox": str(self.outbox),
            "engine": {"name": "blend", "factor": 2},
            "output": {"preset": "ultrafast"},
            "daemon": {"state_dir": str(self.state), "done_dir": str(self.done), "failed_dir": str(self.failed),
                       "settle_seconds": 0.5, "rescan_seconds": 5, "min_free_mb": 0, "stalled_copy_seconds": 3},
            "notifications": {"enabled": False},
            "logging": {"dir": str(self.logs), "level": "INFO"},
        }
        self.config = _merge(base, config or {})
        self.config_path = self.root / "config.yaml"
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.env = {key: value for key, value in os.environ.items() if key not in ("DBUS_SESSION_BUS_ADDRESS", "NOTIFY_SOCKET")}
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")

    # --- the process --------------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0, preexec: Callable[[], None] | None = None,
              config_first: bool = False) -> DaemonProcess:
        """``preexec`` runs in the child before exec (POSIX only), e.g. to lower its descriptor limit;
        ``config_first``: ``midframe --config F watch`` rather than ``midframe watch --config F``."""
        self.runs += 1
        self.stderr_path = self.root / f"daemon-{self.runs}.log"
        config = ["--config", str(self.config_path)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "midframe", *(config + ["watch"] if config_first else ["watch"] + config)],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "wb"), start_new_session=True, preexec_fn=preexec,  # noqa: SIM115
        )
        wait_for(self._answers, timeout=timeout, what=f"the daemon to answer (log: {self.stderr_path})")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            data = json.loads((self.state / "control.json").read_text())
            if data.get("pid") != self.proc.pid:
                return False
            self.client().status()
        except (OSError, ValueError, ControlError):
            return False
        return True

    def client(self) -> ControlClient:
        return ControlClient.from_state_dir(self.state)

    def status(self) -> dict:
        return self.client().status()

    def jobs(self) -> list[dict]:
        return self.client().jobs()

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def signal(self, signum: int, *, group: bool = False) -> None:
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, signum)     # the whole session: the daemon and its ffmpeg children
        else:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """Power loss: SIGKILL to the daemon and every child."""
        self.signal(signal.SIGKILL, group=True)
        self.proc.wait(10)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL, group=True)
            self.proc.wait(10)

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "midframe", *args, "--config", str(self.config_path)],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    # --- the folders --------------------------------------------------------------------------------

    def wait_jobs_final(self, count: int, *, timeout: float) -> list[dict]:
        """Until ``count`` jobs are done, failed or cancelled and their files have been put away. A job is
        recorded failed before its source moves to failed_dir (so a crash between the two is finished at
        start-up): a failed source still to be seen without its error file, or a record that changed since
        the last look, is not settled yet."""
        last: list[dict] = []

        def settled() -> list[dict] | None:
            nonlocal last
            jobs, previous = self.jobs(), last
            last = jobs
            final = [job for job in jobs if job["state"] in ("done", "failed", "cancelled")]
            put_away = all(not os.path.lexists(job["path"]) or os.path.lexists(job["path"] + ".error.txt")
                           for job in jobs if job["state"] == "failed")
            return jobs if len(jobs) >= count and len(final) == len(jobs) and put_away and jobs == previous else None

        return wait_for(settled, timeout=timeout, step=0.2, what=f"{count} finished jobs")

    def inbox_names(self) -> list[str]:
        """What is in the inbox, but the daemon's own lock file (``.midframe-inbox.lock``)."""
        return sorted(p.name for p in self.inbox.iterdir() if p.name != INBOX_LOCK_FILE)

    def visible_outputs(self) -> list[str]:
        if not self.outbox.exists():
            return []
        return sorted(str(p.relative_to(self.outbox)) for p in self.outbox.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.outbox).parts))
