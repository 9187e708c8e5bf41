"""A real daemon process (``python -m midframe watch``) under hostile conditions: a stale control.json
on a port someone else took, a thousand idle connections under a 1024-descriptor limit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, wait_for
from tests.media import make_clip
from tests.net_helpers import Impostor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=0.5, size="64x48")


def test_a_stale_control_json_never_gets_the_token(tmp_path):
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    port = int(daemon.client().url.rsplit(":", 1)[1])
    old_token = (daemon.state / "control.token").read_text().strip()
    daemon.kill()                                         # a crash: control.json stays behind
    control = json.loads((daemon.state / "control.json").read_text())
    impostor = Impostor(port)                             # another program takes the port
    try:
        done = daemon.cli("status")
        assert done.returncode != 0 and f"left by process {control['pid']}, which has ended" in done.stderr
        assert impostor.received == b""                   # not even a connection
        # The pid in control.json is alive again (reused): the client asks the listener for proof.
        control["pid"] = os.getpid()
        (daemon.state / "control.json").write_text(json.dumps(control))
        done = daemon.cli("status")
        assert done.returncode != 0 and "something else listens there" in done.stderr, done.stderr
        assert b"GET /hello?nonce=" in impostor.received and old_token.encode() not in impostor.received
    finally:
        impostor.close()
    daemon.start()
    assert (daemon.state / "control.token").read_text().strip() != old_token     # fresh at every start
    assert daemon.cli("status").returncode == 0
    daemon.stop_if_running()


@pytest.mark.skipif(sys.platform != "linux", reason="counts descriptors in /proc; sets limits with setrlimit")
def test_idle_connections_do_not_stop_status_or_the_inbox_under_1024_descriptors(tmp_path, clip):
    import resource

    attackers = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = attackers + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"this test process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    daemon = DaemonProcess(tmp_path, {"engine": {"name": "dis"}, "daemon": {"rescan_seconds": 1}})
    idle: list[socket.socket] = []
    try:
        daemon.start(preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
        pid = daemon.proc.pid
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert any(line.startswith("Max open files") and line.split()[3:5] == ["1024", "1024"]
                   for line in limits.splitlines())
        address = ("127.0.0.1", int(daemon.client().url.rsplit(":", 1)[1]))
        for _ in range(attackers):
            idle.append(socket.create_connection(address, timeout=10))
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
        status = daemon.cli("status", "--json", timeout=20)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["state"] == "idle"
        shutil.copy(clip, daemon.inbox / "clip.mp4")      # the inbox scan still works
        jobs = daemon.wait_jobs_final(1, timeout=60)
        assert [job["state"] for job in jobs] == ["done"], jobs
        assert descriptors < 200 and threads < 30, (descriptors, threads)
    finally:
        for sock in idle:
            sock.close()
        daemon.stop_if_running()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
