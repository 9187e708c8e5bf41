"""The control API: HTTP + JSON on 127.0.0.1 with a bearer token, and the client the CLI and tray use.

The daemon writes ``<state_dir>/control.json`` (``{"url", "pid"}``) once it listens, and keeps the
secret in ``<state_dir>/control.token`` (mode 0600): only a process of the same user can read it.

    GET  /status                 DESIGN.md's ``status --json``
    POST /pause | /resume | /stop
    GET  /jobs                   [{id, name, path, state, attempts, error, output, frames_done, frames_total}]
    POST /jobs/<id>/retry | /jobs/<id>/cancel
    GET  /events?after=N&client=NAME
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from midframe.daemon.store import JobStateError
from midframe.errors import ControlError, DaemonNotRunning

CONTROL_FILE = "control.json"
TOKEN_FILE = "control.token"


class ControlTarget(Protocol):
    """What the server exposes: the daemon implements it."""

    def status(self) -> dict[str, Any]: ...
    def pause(self) -> dict[str, Any]: ...
    def resume(self) -> dict[str, Any]: ...
    def stop(self) -> dict[str, Any]: ...
    def jobs(self) -> list[dict[str, Any]]: ...
    def retry(self, job_id: int) -> dict[str, Any]: ...
    def cancel(self, job_id: int) -> dict[str, Any]: ...
    def events(self, after: int = 0, *, client: str = "cli") -> dict[str, Any]: ...


class _NotFound(LookupError):
    pass


def _route(target: ControlTarget, method: str, path: str, query: dict[str, list[str]]) -> Any:
    parts = [p for p in path.split("/") if p]
    if method == "GET" and parts == ["status"]:
        return target.status()
    if method == "GET" and parts == ["jobs"]:
        return target.jobs()
    if method == "GET" and parts == ["events"]:
        after = int(query.get("after", ["0"])[0])
        return target.events(after, client=query.get("client", ["cli"])[0])
    if method == "POST" and len(parts) == 1 and parts[0] in ("pause", "resume", "stop"):
        return getattr(target, parts[0])()
    if method == "POST" and len(parts) == 3 and parts[0] == "jobs" and parts[2] in ("retry", "cancel"):
        return getattr(target, parts[2])(int(parts[1]))
    raise _NotFound(f"{method} {path}")


def _handler_class(target: ControlTarget, token: str) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "midframe"
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 1 << 16))
            given = (self.headers.get("Authorization") or "").encode()
            if not hmac.compare_digest(given, expected):
                self._reply(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong token"},
                            {"WWW-Authenticate": 'Bearer realm="midframe"'})
                return
            url = urllib.parse.urlsplit(self.path)
            try:
                result = _route(target, method, url.path, urllib.parse.parse_qs(url.query))
            except _NotFound as exc:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {exc}"})
            except JobStateError as exc:
                status = HTTPStatus.NOT_FOUND if str(exc).startswith("no job") else HTTPStatus.CONFLICT
                self._reply(status, {"error": str(exc)})
            except ValueError as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except Exception as exc:
                logger.exception("control API: {} {} failed", method, self.path)
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})
            else:
                self._reply(HTTPStatus.OK, result)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.trace("control API: " + format, *args)

    return Handler


class ControlServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread of its own."""

    def __init__(self, target: ControlTarget, *, token: str, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(target, token))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="midframe-control")
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, replacing it atomically."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def load_or_create_token(state_dir: Path) -> str:
    """The token in ``control.token``; a new one if the file is missing or others could read it."""
    path = state_dir / TOKEN_FILE
    try:
        info = path.stat()
        token = path.read_text(encoding="utf-8").strip()
        if token and (os.name == "nt" or info.st_mode & 0o077 == 0):
            return token
    except OSError:
        pass
    token = secrets.token_urlsafe(32)
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_private(path, token + "\n")
    return token


def write_control_file(state_dir: Path, url: str, *, pid: int | None = None) -> Path:
    path = state_dir / CONTROL_FILE
    _write_private(path, json.dumps({"url": url, "pid": os.getpid() if pid is None else pid}) + "\n")
    return path


def read_control_file(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "url" in data else None


def remove_control_file(state_dir: Path, *, pid: int | None = None) -> None:
    """Remove ``control.json`` if it is ours (another daemon may have taken over the state dir)."""
    data = read_control_file(state_dir)
    if data is not None and data.get("pid") == (os.getpid() if pid is None else pid):
        (state_dir / CONTROL_FILE).unlink(missing_ok=True)


class ControlClient:
    """Talks to a running daemon. Every method returns the decoded JSON answer."""

    pid: int | None = None

    def __init__(self, url: str, token: str, *, timeout: float = 5.0,
                 opener: Callable[..., Any] = urllib.request.urlopen) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._open = opener

    @classmethod
    def from_state_dir(cls, state_dir: Path, *, timeout: float = 5.0) -> ControlClient:
        state_dir = Path(state_dir)
        data = read_control_file(state_dir)
        try:
            token = (state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        if data is None or not token:
            raise DaemonNotRunning(f"no midframe daemon is running on {state_dir} (start one with `midframe watch`)")
        client = cls(str(data["url"]), token, timeout=timeout)
        client.pid = data.get("pid")
        return client

    def _call(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with self._open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise ControlError(f"the daemon refused {method} {path}: {message} (HTTP {exc.code})") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonNotRunning(f"no midframe daemon answers at {self.url} ({reason})") from None

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
