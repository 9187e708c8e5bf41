"""`midframe run`: daemon and tray in one process, signals, and the headless fallback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from midframe import run_command as launch
from midframe.api.control import CONTROL_FILE, ControlClient
from midframe.daemon.lifecycle import NoLifecycle
from midframe.daemon.root import build_daemon
from midframe.daemon.startup import start_daemon
from midframe.errors import ControlError
from midframe.run_command import run_with_tray
from midframe.signals import SignalFlags
from midframe.tray import desktop


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'in'}\noutbox: {tmp_path / 'out'}\n"
        f"engine: {{name: blend}}\n"
        f"daemon: {{state_dir: {tmp_path / 'state'}, settle_seconds: 0.2, rescan_seconds: 1}}\n"
        f"logging: {{dir: {tmp_path / 'log'}}}\n",
        encoding="utf-8",
    )
    return config


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def answering(state_dir: Path):
    try:
        return ControlClient.from_state_dir(state_dir, timeout=1).status()
    except ControlError:
        return None


class FakeTray:
    """Stands in for TrayIcon: ``run`` blocks the main thread until ``stop`` (or ``stop_when()``)."""

    def __init__(self, *, fail: bool = False, stop_when=lambda: False, quit_after_s: float | None = None) -> None:
        self.stopped = threading.Event()
        self.fail = fail
        self.failed = False
        self.ran = threading.Event()
        self.stop_when = stop_when
        self.quit_after_s = quit_after_s

    def run(self) -> None:
        self.ran.set()
        if self.fail:
            raise RuntimeError("Gtk could not be initialised")
        started = time.monotonic()
        while not self.stopped.wait(0.1):
            if self.stop_when() or (self.quit_after_s is not None and time.monotonic() - started > self.quit_after_s):
                self.stopped.set()

    def stop(self) -> None:
        self.stopped.set()


def fake_toolkit(monkeypatch, trays: list[FakeTray], *, quit_after_s: float | None = None) -> None:
    def make_tray(app, pystray, *, stop_when=lambda: False):
        tray = FakeTray(stop_when=stop_when, quit_after_s=quit_after_s)
        tray.app = app
        trays.append(tray)
        return tray

    monkeypatch.setattr(launch, "load_tray_toolkit", lambda: object())
    monkeypatch.setattr(launch, "TrayIcon", make_tray)


def test_sigterm_stops_tray_and_daemon(tmp_path, monkeypatch):
    """`midframe run`: SIGTERM only sets a flag; the tray's loop and the daemon's both act on it."""
    config = write_config(tmp_path)
    trays: list[FakeTray] = []
    fake_toolkit(monkeypatch, trays)
    before = signal.getsignal(signal.SIGTERM)
    state_dir = tmp_path / "state"

    def poke() -> None:
        wait_for(lambda: answering(state_dir), what="the daemon's API")
        os.kill(os.getpid(), signal.SIGTERM)

    poker = threading.Thread(target=poke)
    poker.start()
    assert launch.main_job(config) == 0
    poker.join()
    assert trays[0].stopped.is_set()
    assert not (state_dir / CONTROL_FILE).exists()
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_through_the_api_closes_the_daemon_but_not_the_tray(tmp_path):
    config = write_config(tmp_path)
    state_dir = tmp_path / "state"
    daemon = start_daemon(config, lifecycle=NoLifecycle())
    tray = FakeTray()
    seen = {}

    def drive() -> None:
        wait_for(lambda: answering(state_dir), what="the daemon's API")
        ControlClient.from_state_dir(state_dir).stop()
        # the lock and API are released while the tray stays up, so "Start daemon" can work
        seen["released"] = wait_for(lambda: not (state_dir / CONTROL_FILE).exists(), what="control.json removed")
        seen["tray_up"] = not tray.stopped.is_set()
        tray.stop()

    driver = threading.Thread(target=drive)
    driver.start()
    assert run_with_tray(daemon, tray, flags=SignalFlags()) == 0
    driver.join()
    assert seen == {"released": True, "tray_up": True}


def test_a_tray_that_fails_leaves_the_daemon_running_until_stopped(tmp_path):
    config = write_config(tmp_path)
    state_dir = tmp_path / "state"
    daemon = start_daemon(config, lifecycle=NoLifecycle())
    tray = FakeTray(fail=True)
    seen = {}

    def drive() -> None:
        tray.ran.wait(10)
        seen["status"] = wait_for(lambda: answering(state_dir), what="the daemon's API")["state"]
        ControlClient.from_state_dir(state_dir).stop()

    driver = threading.Thread(target=drive)
    driver.start()
    assert run_with_tray(daemon, tray, flags=SignalFlags()) == 0
    driver.join()
    assert seen == {"status": "idle"}  # still answering after the tray failed
    assert not (state_dir / CONTROL_FILE).exists()


@pytest.mark.parametrize("display", [None, ":1999"], ids=["no-display", "display-without-server"])
def test_run_without_a_usable_desktop_is_the_daemon_alone(tmp_path, display):
    config = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}
    if display:
        env["DISPLAY"] = display
    process = subprocess.Popen([sys.executable, "-m", "midframe", "run", "--config", str(config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = wait_for(lambda: answering(tmp_path / "state") or process.poll() is not None, what="the daemon")
        assert isinstance(status, dict) and status["state"] == "idle"
        stop = subprocess.run([sys.executable, "-m", "midframe", "stop", "--config", str(config)],
                              capture_output=True, text=True, timeout=30)
        assert "stops after the current batch" in stop.stdout, stop
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "no tray icon" in output and "running the daemon alone" in output


def test_tray_command_without_a_display_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "midframe", "tray", "--config", str(write_config(tmp_path))],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "no desktop session" in result.stderr


def test_start_daemon_command_is_detached(tmp_path):
    command = desktop.daemon_command(Path("rel/c.yaml"))
    assert command[-4:] == ["watch", "--quiet", "--config", str(Path("rel/c.yaml").absolute())]
    assert Path(command[0]).is_absolute()
    posix = desktop.detached_options("linux")
    assert posix["start_new_session"] is True and posix["stdin"] == subprocess.DEVNULL
    windows = desktop.detached_options("win32")
    assert "start_new_session" not in windows
    assert windows["creationflags"] & 0x200 and windows["creationflags"] & 0x8  # new group, no console


def test_run_beside_a_running_daemon_is_its_tray(tmp_path, monkeypatch):
    """`midframe run` at login while the systemd user service already runs: the tray for that daemon."""
    config = write_config(tmp_path)
    service = build_daemon(config, lifecycle=NoLifecycle())
    service.start()
    trays: list[FakeTray] = []
    fake_toolkit(monkeypatch, trays, quit_after_s=0.5)  # the user quits the tray
    try:
        assert launch.main_job(config) == 0
        assert trays[0].ran.is_set()
        assert trays[0].app.quit_text == "Quit tray" and not trays[0].app.stop_daemon_on_quit
        assert answering(tmp_path / "state")["state"] == "idle"  # the service's daemon is untouched
    finally:
        service.request_stop()
        service.close()
