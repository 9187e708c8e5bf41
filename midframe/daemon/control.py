"""The control API: HTTP + JSON on 127.0.0.1, a bearer token, and the client the CLI and tray use.

The daemon writes a fresh secret to ``<state_dir>/control.token`` (mode 0600) at every start, then
``<state_dir>/control.json`` (``{"url", "pid"}``) once it listens. Requests carry
``Authorization: Bearer <token>``; a client sends it only after the server has proved it knows the
token (``GET /hello``, see :mod:`midframe.daemon.control_files`).

    GET  /hello?nonce=HEX        no token: {"proof": HMAC(token, nonce, port, pid), "pid"}
    GET  /status                 DESIGN.md's ``status --json``
    POST /pause | /resume | /stop
    GET  /jobs                   [{id, name, path, state, attempts, error, output, frames_done, frames_total}]
    POST /jobs/<id>/retry | /jobs/<id>/cancel
    GET  /events?after=N&client=NAME

Who may ask is decided in one place, :class:`Gate` (the Host must name this loopback address and
port, against DNS rebinding; every route but ``/hello`` needs the token), before any body is read.
The server itself (:mod:`midframe.daemon.httpd`) bounds connections, threads and request sizes.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Protocol

from loguru import logger

from midframe.daemon.control_client import ControlClient
from midframe.daemon.control_files import (
    CONTROL_FILE,
    TOKEN_FILE,
    hello_proof,
    new_token,
    read_control_file,
    read_token,
    remove_control_file,
    valid_nonce,
    write_control_file,
)
from midframe.daemon.httpd import Head, HttpServer, Limits, Request, Response, error
from midframe.daemon.store import JobStateError

__all__ = [
    "CONTROL_FILE", "TOKEN_FILE", "ControlClient", "ControlServer", "ControlTarget", "Gate", "Limits",
    "new_token", "read_control_file", "read_token", "remove_control_file", "write_control_file",
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
OPEN_ROUTES = frozenset({("GET", "/hello")})
MAX_ID = 2**63 - 1  # SQLite's INTEGER
_NUMBER = re.compile(r"[0-9]{1,19}")
_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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


class Gate:
    """Who may use the API, decided from the request head alone (before a body is read)."""

    def __init__(self, *, token: str, port: int, hosts: Iterable[str] = LOOPBACK_NAMES,
                 open_routes: frozenset[tuple[str, str]] = OPEN_ROUTES) -> None:
        self._expected = f"Bearer {token}".encode()
        self._hosts = frozenset(f"{host}:{port}".lower() for host in hosts)
        self._open_routes = open_routes

    def admit(self, head: Head) -> Response | None:
        """None to let the request through, else the refusal to send."""
        host = head.headers.get("host")
        if host is None:
            return error(HTTPStatus.BAD_REQUEST, "a Host header is required")
        if host.lower() not in self._hosts:
            return error(HTTPStatus.FORBIDDEN, "this API answers only requests addressed to its loopback address")
        if (head.method, head.path) in self._open_routes:
            return None
        given = head.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, self._expected):
            return error(HTTPStatus.UNAUTHORIZED, "missing or wrong token", ("WWW-Authenticate", 'Bearer realm="midframe"'))
        return None


class _NotFound(LookupError):
    pass


def _number(text: str, what: str, *, low: int = 0) -> int:
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= MAX_ID:
        raise ValueError(f"{what} must be a whole number from {low} to {MAX_ID}, not {text[:40]!r}")
    return int(text)


def _one(query: Mapping[str, list[str]], name: str, default: str) -> str:
    return query.get(name, [default])[0]


def _route(target: ControlTarget, method: str, path: str, query: Mapping[str, list[str]]) -> Any:
    parts = [p for p in path.split("/") if p]
    if method == "GET" and parts == ["status"]:
        return target.status()
    if method == "GET" and parts == ["jobs"]:
        return target.jobs()
    if method == "GET" and parts == ["events"]:
        client = _one(query, "client", "cli")
        if not _CLIENT_NAME.fullmatch(client):
            raise ValueError("client must be a short name (letters, digits, . _ -)")
        return target.events(_number(_one(query, "after", "0"), "after"), client=client)
    if method == "POST" and len(parts) == 1 and parts[0] in ("pause", "resume", "stop"):
        return getattr(target, parts[0])()
    if method == "POST" and len(parts) == 3 and parts[0] == "jobs" and parts[2] in ("retry", "cancel"):
        return getattr(target, parts[2])(_number(parts[1], "a job id", low=1))
    raise _NotFound(f"{method} {path}")


class ControlServer:
    """The API on 127.0.0.1 (``port`` 0: any free one), served by a bounded :class:`HttpServer`."""

    def __init__(self, target: ControlTarget, *, token: str, port: int = 0, host: str = "127.0.0.1",
                 limits: Limits = Limits()) -> None:
        self._target = target
        self._token = token
        self._http = HttpServer(host=host, port=port, admit=self._admit, handle=self._handle, limits=limits,
                                name="midframe-control")
        self.port = self._http.address[1]
        self._gate = Gate(token=token, port=self.port)

    @property
    def url(self) -> str:
        return f"http://{self._http.address[0]}:{self.port}"

    def start(self) -> str:
        self._http.start()
        return self.url

    def stop(self) -> None:
        self._http.stop()

    def _admit(self, head: Head) -> Response | None:
        return self._gate.admit(head)

    def _handle(self, request: Request) -> Response:
        head = request.head
        if (head.method, head.path) == ("GET", "/hello"):
            return self._hello(_one(head.query, "nonce", ""))
        try:
            result = _route(self._target, head.method, head.path, head.query)
        except _NotFound as exc:
            return error(HTTPStatus.NOT_FOUND, f"no such endpoint: {exc}")
        except JobStateError as exc:
            status = HTTPStatus.NOT_FOUND if str(exc).startswith("no job") else HTTPStatus.CONFLICT
            return error(status, str(exc))
        except ValueError as exc:
            return error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:
            logger.exception("control API: {} {} failed", head.method, head.path)
            return error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
        return Response(HTTPStatus.OK, result)

    def _hello(self, nonce: str) -> Response:
        if not valid_nonce(nonce):
            return error(HTTPStatus.BAD_REQUEST, "nonce must be 32 to 128 lower-case hex digits")
        pid = os.getpid()
        return Response(HTTPStatus.OK, {"proof": hello_proof(self._token, nonce=nonce, port=self.port, pid=pid),
                                        "pid": pid})
