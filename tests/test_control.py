"""The control API: token auth, routes, the client, the control files (notifications: test_notify.py)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from midframe.api.control import (
    ControlClient,
    ControlServer,
    new_token,
    remove_control_file,
    write_control_file,
)
from midframe.api.control_files import hello_proof
from midframe.daemon.jobs.events import EventLog
from midframe.daemon.store.sqlite import JobStateError
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
            raise JobStateError("no job 404", missing=True)
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
