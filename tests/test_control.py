"""The control API: token auth, routes, the client, the control files; notifications routing."""

from __future__ import annotations

import json
import os
import shutil
import stat
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from midframe.daemon.control import (
    ControlClient,
    ControlServer,
    new_token,
    remove_control_file,
    write_control_file,
)
from midframe.daemon.control_files import hello_proof
from midframe.daemon.notify import DesktopNotifier, EventLog, Notifier, format_duration
from midframe.daemon.store import JobStateError
from midframe.engine.job import Progress
from midframe.errors import ControlError, DaemonNotRunning
from tests.net_helpers import Impostor, raw, request


class FakeDaemon:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.log = EventLog()

    def status(self):
        return {"state": "idle", "current": None, "queued": 0, "done": 1, "failed": 0}

    def pause(self):
        self.calls.append(("pause",))
        return {"state": "paused"}

    def resume(self):
        self.calls.append(("resume",))
        return {"state": "idle"}

    def stop(self):
        self.calls.append(("stop",))
        return {"state": "stopping"}

    def jobs(self):
        return [{"id": 1, "name": "a.mp4", "state": "done"}]

    def retry(self, job_id):
        if job_id == 404:
            raise JobStateError("no job 404")
        if job_id == 409:
            raise JobStateError("job 409 is done; only a failed job can be retried")
        self.calls.append(("retry", job_id))
        return {"id": job_id, "state": "queued"}

    def cancel(self, job_id):
        self.calls.append(("cancel", job_id))
        return {"id": job_id, "state": "cancelled"}

    def events(self, after=0, *, client="cli"):
        return self.log.since(after, client=client)


@pytest.fixture
def api(tmp_path):
    target = FakeDaemon()
    token = new_token(tmp_path)
    server = ControlServer(target, token=token)
    url = server.start()
    write_control_file(tmp_path, url)
    yield target, tmp_path, url, token
    server.stop()


def test_client_round_trip(api):
    target, state_dir, url, _ = api
    client = ControlClient.from_state_dir(state_dir)
    assert client.url == url and url.startswith("http://127.0.0.1:") and client.pid == os.getpid()
    assert client.status()["done"] == 1
    assert client.pause() == {"state": "paused"}
    assert client.resume() == {"state": "idle"}
    assert client.jobs()[0]["name"] == "a.mp4"
    assert client.retry(3) == {"id": 3, "state": "queued"}
    assert client.cancel(4) == {"id": 4, "state": "cancelled"}
    assert client.stop() == {"state": "stopping"}
    assert target.calls == [("pause",), ("resume",), ("retry", 3), ("cancel", 4), ("stop",)]
    with pytest.raises(ControlError, match="HTTP 404"):
        client.retry(404)
    with pytest.raises(ControlError, match="HTTP 409"):
        client.retry(409)


def test_every_request_needs_the_token(api):
    target, _, url, token = api
    for method, path in (("GET", "/status"), ("POST", "/stop"), ("GET", "/jobs"), ("POST", "/jobs/1/retry"),
                         ("GET", "/events")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            request = urllib.request.Request(url + path, method=method, headers=headers,
                                             data=b"" if method == "POST" else None)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=5)
            assert caught.value.code == 401
    assert target.calls == []
    with pytest.raises(DaemonNotRunning, match="the token was not sent"):   # a wrong token fails the proof
        ControlClient(url, "nope").status()


def test_unknown_routes_and_bad_ids(api):
    _, _, url, token = api
    for method, path, code in (("GET", "/nothing", 404), ("POST", "/status", 404), ("POST", "/jobs/x/retry", 400)):
        request = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None,
                                         headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == code
        assert "error" in json.loads(caught.value.read())


def test_a_fresh_private_token_at_every_start(tmp_path):
    tokens = [new_token(tmp_path) for _ in range(3)]
    assert len(set(tokens)) == 3 and all(len(token) >= 32 for token in tokens)
    assert (tmp_path / "control.token").read_text().strip() == tokens[-1]
    write_control_file(tmp_path, "http://127.0.0.1:9")
    for name in ("control.token", "control.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_hello_proves_the_token_without_asking_for_it(api):
    _, _, url, token = api
    nonce = "ab" * 32
    status, body = raw(url, request(url, f"GET /hello?nonce={nonce} HTTP/1.1"))
    answer = json.loads(body)
    port = int(url.rsplit(":", 1)[1])
    assert status == 200 and answer == {"proof": hello_proof(token, nonce=nonce, port=port, pid=os.getpid()),
                                        "pid": os.getpid()}
    assert raw(url, request(url, "GET /hello?nonce=xyz HTTP/1.1"))[0] == 400


def test_a_stale_control_file_never_gets_the_token_sent(tmp_path):
    token = new_token(tmp_path)
    impostor = Impostor()
    try:
        # The pid is alive (as after pid reuse): the client asks for proof, and the answer fails it.
        write_control_file(tmp_path, f"http://127.0.0.1:{impostor.port}", pid=os.getpid())
        with pytest.raises(DaemonNotRunning, match="something else listens there"):
            ControlClient.from_state_dir(tmp_path).status()
        assert b"GET /hello?nonce=" in impostor.received and token.encode() not in impostor.received
        # The daemon named in control.json has ended (a crash): refused without connecting at all.
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        write_control_file(tmp_path, f"http://127.0.0.1:{impostor.port}", pid=ended.pid)
        seen = len(impostor.received)
        with pytest.raises(DaemonNotRunning, match=f"left by process {ended.pid}, which has ended"):
            ControlClient.from_state_dir(tmp_path)
        assert len(impostor.received) == seen
    finally:
        impostor.close()


def test_requests_must_be_addressed_to_the_loopback_address_and_port(api):
    target, _, url, token = api
    port = int(url.rsplit(":", 1)[1])
    auth = f"Authorization: Bearer {token}"
    for host, expected in ((f"evil.example:{port}", 403), (f"127.0.0.1:{port + 1}", 403), ("127.0.0.1", 403),
                           (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)):
        data = f"POST /pause HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n\r\n".encode()
        assert raw(url, data)[0] == expected, host
    assert raw(url, f"GET /status HTTP/1.0\r\n{auth}\r\n\r\n".encode())[0] == 400   # no Host at all
    assert target.calls == [("pause",), ("pause",)]


def test_content_length_and_token_are_checked_before_the_body(api):
    target, _, url, token = api
    auth = f"Authorization: Bearer {token}"
    assert raw(url, request(url, "POST /pause HTTP/1.1", auth, "Content-Length: -1"))[0] == 400
    assert raw(url, request(url, "POST /pause HTTP/1.1", auth, "Content-Length: 65537"))[0] == 413
    flood = b"POST /stop HTTP/1.1\r\n" * 10_000
    assert raw(url, request(url, "POST /pause HTTP/1.1", auth, f"Content-Length: {len(flood)}", body=flood))[0] == 413
    assert raw(url, request(url, "POST /pause HTTP/1.1", auth, "Content-Length: 65536", body=b"x" * 65536))[0] == 200
    # Without the token the refusal comes at once, while the announced body is still unsent.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request(url, "POST /stop HTTP/1.1", "Content-Length: 60000"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 401 ")
    assert target.calls == [("pause",)]


def test_ids_and_numbers_out_of_range_are_refused(api):
    target, _, url, token = api
    auth = f"Authorization: Bearer {token}"
    for path in (f"/jobs/{2**63}/retry", "/jobs/-1/retry", "/jobs/0/cancel", "/jobs/1e3/retry",
                 f"/jobs/{'9' * 40}/cancel"):
        status, body = raw(url, request(url, f"POST {path} HTTP/1.1", auth))
        assert status == 400 and "whole number" in json.loads(body)["error"], path
    for query in (f"after={2**64}", "after=-5", "client=" + "x" * 100, "client=a%0Ab"):
        assert raw(url, request(url, f"GET /events?{query} HTTP/1.1", auth))[0] == 400, query
    assert raw(url, request(url, f"POST /jobs/{2**63 - 1}/retry HTTP/1.1", auth))[0] == 200
    assert target.calls == [("retry", 2**63 - 1)]


def test_no_daemon(tmp_path):
    with pytest.raises(DaemonNotRunning):
        ControlClient.from_state_dir(tmp_path)
    new_token(tmp_path)
    write_control_file(tmp_path, "http://127.0.0.1:9")        # nothing listens on the discard port
    with pytest.raises(DaemonNotRunning):
        ControlClient.from_state_dir(tmp_path, timeout=2).status()
    remove_control_file(tmp_path, pid=os.getpid() + 1)          # not ours: kept
    assert (tmp_path / "control.json").exists()
    remove_control_file(tmp_path)
    assert not (tmp_path / "control.json").exists()


# --- events and notification routing ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDesktop:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, key: str, title: str, body: str) -> None:
        self.sent.append((key, title, body))

    def close(self) -> None:
        pass


def test_events_since_and_tray_routing():
    clock = Clock()
    log = EventLog(clock=clock)
    desktop = FakeDesktop()
    notifier = Notifier(log, desktop=desktop, progress_interval=lambda: 10.0, clock=clock)
    notifier.started(1, "a.mp4")
    assert [s[1] for s in desktop.sent] == ["midframe: a.mp4"]     # no tray: to the desktop
    first = log.since(0, client="tray")                             # a tray attaches
    assert [e["kind"] for e in first["events"]] == ["started"] and first["last"] == first["events"][0]["seq"]
    notifier.failed(1, "a.mp4", "not a video")
    assert len(desktop.sent) == 1                                  # the tray shows it instead
    later = log.since(first["last"], client="tray")
    assert [(e["kind"], e["body"], e["job_id"]) for e in later["events"]] == [("failed", "not a video", 1)]
    clock.now += 16                                                 # the tray went away
    notifier.paused("paused on request")
    assert desktop.sent[-1][1] == "midframe paused"
    assert set(later["events"][0]) == {"seq", "kind", "title", "body", "job_id", "time"}


def test_notifications_are_escaped_for_the_desktop_and_the_tray():
    desktop = FakeDesktop()
    events = EventLog()
    notifier = Notifier(events, desktop=desktop)
    name = os.fsdecode(b"caf\xe9 \xff.mp4")                     # a name that is not UTF-8, as the OS gives it
    notifier.failed(1, "a\nb.mp4", f"{name}: is not a video file")
    assert desktop.sent == [("job-1", "midframe: a\\nb.mp4 failed", "caf\\xe9 \\xff.mp4: is not a video file")]
    event = events.since(0)["events"][0]
    assert (event["title"], event["body"]) == desktop.sent[0][1:]


def test_progress_is_paced_and_disabled_notifications_only_record():
    clock = Clock()
    log = EventLog(clock=clock)
    desktop = FakeDesktop()
    enabled = [True]
    notifier = Notifier(log, desktop=desktop, enabled=lambda: enabled[0], progress_interval=lambda: 10.0,
                        clock=clock)
    notifier.started(2, "b.mkv")
    step = Progress(frames_done=50, frames_total=200, fps=12.5, elapsed_s=4.0, eta_s=125.0)
    assert not notifier.progress(2, "b.mkv", step)                  # too soon after "started"
    clock.now += 10
    assert notifier.progress(2, "b.mkv", step)
    assert desktop.sent[-1][2] == "25%, ETA 2m05s (12.5 fps)"
    enabled[0] = False
    notifier.done(2, "b.mkv", "b.50fps.mkv", 3725)
    assert desktop.sent[-1][2] != "b.50fps.mkv in 1h02m"
    assert log.since(0)["events"][-1]["body"] == "b.50fps.mkv in 1h02m"
    assert format_duration(None) == "?" and format_duration(59) == "59s"


def test_event_numbers_keep_growing_across_restarts():
    clock = Clock()
    first = EventLog(clock=clock)
    last = first.append("warning", "x").seq
    clock.now += 1
    assert EventLog(clock=clock).append("warning", "y").seq > last


def test_desktop_detect():
    assert DesktopNotifier.detect({}) is None
    found = DesktopNotifier.detect({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", "PATH": os.environ["PATH"]})
    assert found is None or Path(found.command).name in {"gdbus", "notify-send"}


DESKTOP_SCRIPT = r"""
import json, os, sys, time
from midframe.daemon.notify import DesktopNotifier, EventLog, Notifier
desktop = DesktopNotifier.detect()
assert desktop is not None, "no notifier found on the session bus"
notifier = Notifier(EventLog(), desktop=desktop)
notifier.started(1, "clip.mp4")
notifier.done(1, "clip.mp4", "clip.50fps.mp4", 12)
notifier.close()
print(json.dumps(desktop._ids))
"""


@pytest.mark.desktop
def test_desktop_notifications_reach_a_real_notification_server(tmp_path):
    if not all(map(shutil.which, ("dbus-run-session", "dunst", "dunstctl", "Xvfb"))) or not (
            shutil.which("gdbus") or shutil.which("notify-send")):
        pytest.skip("needs dbus-run-session, Xvfb, dunst, and gdbus or notify-send")
    script = tmp_path / "notify.py"
    script.write_text(DESKTOP_SCRIPT, encoding="utf-8")
    shell = (
        "Xvfb -displayfd 1 -nolisten tcp > display.txt 2>/dev/null & xvfb=$!; "
        "for i in $(seq 100); do [ -s display.txt ] && break; sleep 0.05; done; export DISPLAY=:$(cat display.txt); "
        "dunst -print > shown.txt 2>/dev/null & dunst=$!; "
        "for i in $(seq 50); do dunstctl is-paused >/dev/null 2>&1 && break; sleep 0.1; done; "
        f"{sys.executable} {script}; rc=$?; sleep 0.3; kill $dunst $xvfb; exit $rc"
    )
    done = subprocess.run(["dbus-run-session", "--", "bash", "-c", shell], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert ids.get("job-1", 0) > 0                                   # the server answered with an id
    shown = (tmp_path / "shown.txt").read_text()
    assert "clip.50fps.mp4 in 12s" in shown
