"""The control API's client, shared by the CLI and the tray.

It never hands the token to a stranger: ``from_state_dir`` refuses a ``control.json`` whose daemon
process has ended (left behind by a crash), and before the first request that carries the token the
client asks the server to prove it knows the token (``GET /hello`` with a random nonce). Plain
``http.client``, not ``urllib``: no proxy from the environment and no redirects can carry the token
elsewhere.
"""

from __future__ import annotations

import hmac
import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

from midframe.api.control_files import hello_proof, new_nonce, read_control_file, read_token
from midframe.errors import ControlError, DaemonNotRunning

HELLO_MAX_BYTES = 4096
# The Quick start's command first; `watch` is the same daemon without the tray.
HOW_TO_START = "start one with `midframe run`, or `midframe watch` without the tray"


def process_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


class ControlClient:
    """Talks to a running daemon. Every method returns the decoded JSON answer."""

    pid: int | None = None

    def __init__(self, url: str, token: str, *, timeout: float = 5.0, pid: int | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "http" or not parts.hostname or port is None:
            raise DaemonNotRunning(f"control.json names an address midframe does not use: {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.pid = pid
        self._host, self._port = parts.hostname, port
        self._verified = False

    @classmethod
    def from_state_dir(cls, state_dir: Path, *, timeout: float = 5.0) -> ControlClient:
        state_dir = Path(state_dir)
        data = read_control_file(state_dir)
        token = read_token(state_dir)
        if data is None or token is None:
            raise DaemonNotRunning(f"no midframe daemon is running on {state_dir} ({HOW_TO_START})")
        pid = data.get("pid") if isinstance(data.get("pid"), int) else None
        if pid is not None and not process_alive(pid):
            raise DaemonNotRunning(
                f"no midframe daemon is running on {state_dir}: its control.json was left by process {pid}, "
                f"which has ended ({HOW_TO_START})"
            )
        return cls(str(data["url"]), token, timeout=timeout, pid=pid)

    def _exchange(self, method: str, path: str, headers: dict[str, str], *, limit: int | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            connection.request(method, path, body=b"" if method == "POST" else None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(limit)
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonNotRunning(f"no midframe daemon answers at {self.url} ({exc or type(exc).__name__})") from None
        finally:
            connection.close()

    def verify(self) -> None:
        """Make sure the server at ``url`` is the daemon that holds our token, without sending it."""
        nonce = new_nonce()
        status, body = self._exchange("GET", f"/hello?nonce={nonce}", {}, limit=HELLO_MAX_BYTES)
        try:
            answer = json.loads(body)
            proof, pid = answer["proof"], answer["pid"]
        except (ValueError, TypeError, KeyError):
            proof, pid = None, None
        genuine = (
            status == 200 and isinstance(proof, str) and isinstance(pid, int) and pid == (self.pid or pid)
            and hmac.compare_digest(proof, hello_proof(self.token, nonce=nonce, port=self._port, pid=pid))
        )
        if not genuine:
            raise DaemonNotRunning(
                f"no midframe daemon answers at {self.url}: something else listens there (a control.json left "
                "by a crash, or another daemon); the token was not sent"
            )
        self._verified = True

    def _call(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        if not self._verified:
            self.verify()
        target = path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        status, body = self._exchange(method, target, {"Authorization": f"Bearer {self.token}"})
        try:
            answer = json.loads(body or b"null")
        except ValueError:
            raise ControlError(f"the daemon at {self.url} sent an answer that is not JSON (HTTP {status})") from None
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise ControlError(f"the daemon refused {method} {path}: {message or 'no reason given'} (HTTP {status})")
        return answer

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def pause(self) -> dict[str, Any]:
        return self._call("POST", "/pause")

    def resume(self) -> dict[str, Any]:
        return self._call("POST", "/resume")

    def stop(self) -> dict[str, Any]:
        return self._call("POST", "/stop")

    def jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/jobs")

    def retry(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/retry")

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/cancel")

    def events(self, after: int = 0, *, client: str = "cli") -> dict[str, Any]:
        return self._call("GET", "/events", {"after": int(after), "client": client})

    def move_to_front(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/front")

    def failures_seen(self) -> dict[str, Any]:
        """The failures so far have been seen; returns ``{"failed_unseen", "failed_unseen_names"}``."""
        return self._call("POST", "/failures/seen")

    def login_links(self) -> dict[str, Any]:
        """A one-time code for the dashboard: ``{"urls": [login link, ...], "expires_s"}``."""
        return self._call("POST", "/dashboard/login")
