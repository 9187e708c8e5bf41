"""systemd: sd_notify against a socket the test owns, the unit file, and `midframe service` on Linux."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from midframe.daemon.sd_notify import SystemdNotifier
from midframe.service import commands, systemd

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd is Linux only")


class FakeSystemd:
    """systemd's side of sd_notify: a datagram socket that collects messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float = 0.5) -> list[dict[str, str]]:
        """Messages that arrived within ``timeout`` seconds of silence."""
        self.sock.settimeout(timeout)
        fresh = []
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, socket.timeout):
                break
            fresh.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        self.messages += fresh
        return fresh

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    server = FakeSystemd(str(tmp_path / "notify.sock"))
    yield server
    server.close()


def test_from_environment():
    assert SystemdNotifier.from_environment({}) is None
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"})
    assert notifier is not None and notifier._watchdog_interval == 2.0
    other_pid = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    assert other_pid is not None and other_pid._watchdog_interval == 0.0


def test_messages_reach_the_socket(fake_systemd):
    notifier = SystemdNotifier(fake_systemd.address)
    notifier.ready()
    notifier.status("working: a.mp4 42% ETA 3m")
    notifier.status("working: a.mp4 42% ETA 3m")  # unchanged: not sent again
    notifier.reloading()
    notifier.stopping()
    got = fake_systemd.receive()
    notifier.close()
    assert got[0] == {"READY": "1", "STATUS": "watching the inbox"}
    assert got[1] == {"STATUS": "working: a.mp4 42% ETA 3m"}
    assert got[2]["RELOADING"] == "1" and int(got[2]["MONOTONIC_USEC"]) > 0
    assert got[3]["STOPPING"] == "1"
    assert len(got) == 4


def test_abstract_socket_address(tmp_path):
    server = FakeSystemd(f"@midframe-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        notifier = SystemdNotifier(server.address)
        notifier.ready()
        assert server.receive()[0]["READY"] == "1"
        notifier.close()
    finally:
        server.close()


def test_watchdog_is_rate_limited_to_half_the_interval(fake_systemd):
    now = [100.0]
    notifier = SystemdNotifier(fake_systemd.address, watchdog_usec=10_000_000, monotonic=lambda: now[0])
    for step in range(12):  # a heartbeat every second for 12 s: keep-alives at 0, 5 and 10 s
        now[0] = 100.0 + step
        notifier.heartbeat()
    notifier.close()
    assert [m for m in fake_systemd.receive()] == [{"WATCHDOG": "1"}] * 3


def test_a_missing_socket_is_not_an_error(tmp_path):
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens"))
    assert notifier.send("READY=1") is False
    notifier.heartbeat()
    notifier.close()


def test_unit_text(tmp_path):
    config = tmp_path / "config.yaml"
    text = systemd.unit_text(scope="user", config_path=config, python="/usr/bin/python3")
    for line in (
        "Type=notify", "NotifyAccess=main", f"ExecStart=/usr/bin/python3 -P -m midframe watch --config {config}",
        "WorkingDirectory=~",
        "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", f"WatchdogSec={systemd.WATCHDOG_SEC}",
        f"StartLimitIntervalSec={systemd.START_LIMIT_INTERVAL_SEC}", f"StartLimitBurst={systemd.START_LIMIT_BURST}",
        "WantedBy=default.target",
    ):
        assert line in text.splitlines()
    system = systemd.unit_text(scope="system", config_path=config, user="ann")
    assert "User=ann" in system.splitlines() and "WantedBy=multi-user.target" in system.splitlines()
    assert "'/my 50%% $$x/c.yaml'" in systemd.exec_start(Path("/my 50% $x/c.yaml"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("scope", ["user", "system"])
def test_unit_passes_systemd_analyze_verify(tmp_path, scope):
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    unit = tmp_path / "units" / systemd.UNIT_NAME
    unit.parent.mkdir()
    unit.write_text(systemd.unit_text(scope=scope, config_path=config, user="root"))
    runtime = tmp_path / "runtime"  # --user needs a runtime dir; a container has none of its own
    runtime.mkdir(mode=0o700)
    command = ["systemd-analyze", "verify", *(["--user"] if scope == "user" else []), str(unit)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 0, result.stderr
    assert "midframe.service" not in result.stderr, result.stderr


def test_dry_run_prints_unit_and_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    lines: list[str] = []
    ran: list[list[str]] = []
    code = commands.dispatch("install", scope="user", dry_run=True, config_path=tmp_path / "c.yaml",
                             platform="linux", run=ran.append, out=lines.append)
    text = "\n".join(lines)
    assert code == 0 and ran == []
    assert f"would write the example config to {tmp_path / 'c.yaml'}" in text
    assert f"would write {tmp_path / 'xdg' / 'systemd' / 'user' / 'midframe.service'}" in text
    assert "Type=notify" in text
    assert "would run: systemctl --user daemon-reload" in text
    assert "would run: systemctl --user enable --now midframe.service" in text
    assert not (tmp_path / "c.yaml").exists() and not (tmp_path / "xdg").exists()


def test_install_uninstall_status_run_systemctl(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    ran: list[list[str]] = []

    def run(command):
        ran.append(list(command))
        return 0

    config = tmp_path / "c.yaml"
    options = dict(scope="user", dry_run=False, config_path=config, platform="linux", run=run, out=lambda _: None)
    assert commands.dispatch("install", **options) == 0
    unit = tmp_path / "xdg" / "systemd" / "user" / "midframe.service"
    assert f"--config {config}" in unit.read_text()
    assert config.exists()  # the example config was written for the service to read
    assert ran == [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", "midframe.service"]]
    ran.clear()
    assert commands.dispatch("status", **options) == 0
    assert ran == [["systemctl", "--user", "status", "--no-pager", "midframe.service"]]
    ran.clear()
    assert commands.dispatch("uninstall", **options) == 0
    assert not unit.exists()
    assert ran == [["systemctl", "--user", "disable", "--now", "midframe.service"], ["systemctl", "--user", "daemon-reload"]]


def test_system_scope_goes_to_etc_and_runs_as_the_sudo_user(tmp_path):
    unit = systemd.plan("system", tmp_path / "c.yaml", environ={"SUDO_USER": "ann"})
    assert unit.path == Path("/etc/systemd/system/midframe.service")
    assert "User=ann" in unit.text.splitlines()
    assert unit.systemctl("daemon-reload") == ["systemctl", "daemon-reload"]


def test_a_real_daemon_talks_sd_notify(tmp_path, fake_systemd):
    """`midframe watch` as systemd would start it: READY, STATUS with progress, WATCHDOG, RELOADING, STOPPING."""
    from tests.media import make_clip

    started = time.monotonic()
    clip = make_clip(tmp_path / "clip.mp4", seconds=8, size="640x360", fps="25", audio=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'in'}\noutbox: {tmp_path / 'out'}\nengine: {{name: blend}}\n"
        f"daemon: {{state_dir: {tmp_path / 'state'}, settle_seconds: 0.2, rescan_seconds: 1}}\n"
        f"logging: {{dir: {tmp_path / 'log'}}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "NOTIFY_SOCKET": fake_systemd.address, "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen([sys.executable, "-m", "midframe", "watch", "--config", str(config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    cursor = 0

    def wait_message(predicate, what: str, timeout: float = 15.0) -> dict[str, str]:
        """The first message after the last one matched that satisfies ``predicate``."""
        nonlocal cursor
        deadline = time.monotonic() + timeout
        while True:
            for index in range(cursor, len(fake_systemd.messages)):
                if predicate(fake_systemd.messages[index]):
                    cursor = index + 1
                    return fake_systemd.messages[index]
            cursor = len(fake_systemd.messages)
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} in {fake_systemd.messages}")
            assert process.poll() is None, process.stdout.read()
            fake_systemd.receive(timeout=0.2)

    try:
        wait_message(lambda m: m.get("READY") == "1", "READY=1")
        (tmp_path / "in").mkdir(exist_ok=True)
        shutil.copyfile(clip, tmp_path / "in" / "clip.mp4")
        working = wait_message(lambda m: re.search(r"clip\.mp4 [1-9]\d*% ETA \d", m.get("STATUS", "")),
                               "STATUS with progress")
        wait_message(lambda m: m.get("WATCHDOG") == "1", "a WATCHDOG=1 keep-alive")
        process.send_signal(signal.SIGHUP)
        wait_message(lambda m: m.get("RELOADING") == "1" and "MONOTONIC_USEC" in m, "RELOADING=1")
        wait_message(lambda m: m.get("READY") == "1", "READY=1 after the reload")
        process.send_signal(signal.SIGTERM)
        wait_message(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    fake_systemd.receive(timeout=0.2)
    keepalives = [m for m in fake_systemd.messages if m.get("WATCHDOG") == "1"]
    assert len(keepalives) >= 2, fake_systemd.messages  # one by the time of the progress, one after
    assert working["STATUS"].startswith("working: clip.mp4")
    assert time.monotonic() - started < 20
