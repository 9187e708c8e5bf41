"""The control API: HTTP + JSON on 127.0.0.1 (``daemon.api_host``), a bearer token, and the client
the CLI and tray use; the web dashboard (:mod:`midframe.web`) is served beside it on the same port.

The daemon writes a fresh secret to ``<state_dir>/control.token`` (mode 0600) at every start, then
``<state_dir>/control.json`` (``{"url", "pid"}``) once it listens. Requests carry
``Authorization: Bearer <token>``; a client sends it only after the server has proved it knows the
token (``GET /hello``, see :mod:`midframe.api.control_files`).

    GET  /hello?nonce=HEX        no token: {"proof": HMAC(token, nonce, port, pid), "pid"}
    GET  /status                 DESIGN.md's ``status --json``
    POST /pause | /resume | /stop
    GET  /jobs                   [{id, name, path, state, attempts, error, output, frames_done, frames_total}]
    POST /jobs/<id>/retry | /jobs/<id>/cancel | /jobs/<id>/front (first in the queue)
    GET  /events?after=N&client=NAME    {"events", "last", "failed_unseen", "failed_unseen_names"}
    POST /failures/seen          the failures so far are seen: {"failed_unseen": 0, "failed_unseen_names": []}

Who may ask is decided in one place, :class:`Gate`, from the request head before any body is read:
the Host must name an address this server listens on, with its port (against DNS rebinding); a
request that says it comes from another web site (``Origin``, ``Sec-Fetch-Site``) is refused; every
route but ``/hello`` and the dashboard's page and login needs the token, or the dashboard's session
cookie, and a request that changes something on the strength of the cookie must carry the page's own
``Origin``. The server itself (:mod:`midframe.api.server`) bounds connections, threads and sizes.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Protocol

from loguru import logger

from midframe.api.client import ControlClient
from midframe.api.control_files import (
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
from midframe.api.server import Head, HttpServer, Limits, Request, Response, Stream, error
from midframe.errors import DaemonError, JobStateError

__all__ = [
    "CONTROL_FILE", "TOKEN_FILE", "ControlClient", "ControlServer", "ControlTarget", "Gate", "Limits",
    "WebRoutes", "host_names", "is_loopback", "new_token", "read_control_file", "read_token",
    "remove_control_file", "write_control_file",
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
WILDCARDS = ("0.0.0.0", "::")
OPEN_ROUTES = frozenset({("GET", "/hello")})
SAFE_METHODS = frozenset({"GET", "HEAD"})
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
    def move_to_front(self, job_id: int) -> dict[str, Any]: ...
    def failures_seen(self) -> dict[str, Any]: ...


class WebRoutes(Protocol):
    """The dashboard's side of the port (:class:`midframe.web.Dashboard`)."""

    open_routes: frozenset[tuple[str, str]]  # the page and the login: no token, no cookie
    token_routes: frozenset[tuple[str, str]]  # the token only, never the cookie (making login codes)

    def bind(self, *, port: int, urls: Sequence[str]) -> None: ...
    def has_session(self, head: Head) -> bool: ...
    def handle(self, request: Request) -> Response | None: ...
    def stream(self, head: Head) -> Stream | Response | None: ...


# --- which Host names reach this server --------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _interface_addresses() -> list[str]:
    import psutil

    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6) and "%" not in address.address:
                found.append(address.address)
    return found


def host_names(api_host: str, *, bound: str, addresses: Callable[[], Iterable[str]] = _interface_addresses,
               hostname: Callable[[], str] = socket.gethostname) -> tuple[str, ...]:
    """The names a request's Host header may give (without the port), local ones first: the loopback
    names for a loopback address; for a wildcard (0.0.0.0, ::) those, every address of the machine and
    its host name; else the address itself. A DNS name of another site never matches, so a page whose
    name was rebound to this machine cannot reach the API."""
    names: list[str] = []
    if is_loopback(api_host) or api_host in WILDCARDS:
        names += LOOPBACK_NAMES
    if api_host in WILDCARDS:
        listed = sorted(set(addresses()), key=lambda a: (":" in a, a))
        names += [_url_host(a) for a in listed if a == bound or api_host == "::" or ":" not in a]
        name = hostname().lower()
        if name and name != "localhost":
            names += [name, f"{name}.local"]
    else:
        names += [_url_host(api_host.lower()), _url_host(bound)]
    return tuple(dict.fromkeys(names))


class Gate:
    """Who may use the API, decided from the request head alone (before a body is read)."""

    def __init__(self, *, token: str, port: int, hosts: Iterable[str] = LOOPBACK_NAMES,
                 open_routes: frozenset[tuple[str, str]] = OPEN_ROUTES,
                 token_routes: frozenset[tuple[str, str]] = frozenset(),
                 session: Callable[[Head], bool] = lambda head: False) -> None:
        self._expected = f"Bearer {token}".encode()
        self._hosts = frozenset(f"{host}:{port}".lower() for host in hosts)
        self._open_routes = open_routes
        self._token_routes = token_routes
        self._session = session

    def admit(self, head: Head) -> Response | None:
        """None to let the request through, else the refusal to send."""
        host = head.headers.get("host")
        if host is None:
            return error(HTTPStatus.BAD_REQUEST, "a Host header is required")
        if host.lower() not in self._hosts:
            return error(HTTPStatus.FORBIDDEN, "this API answers only requests addressed to its own address and port")
        origin = head.headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return error(HTTPStatus.FORBIDDEN, "requests from another web site are refused")
        route = (head.method, head.path)
        if route in self._open_routes:
            return None
        if head.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return error(HTTPStatus.FORBIDDEN, "requests from another web site are refused")
        given = head.headers.get("authorization", "").encode("latin-1")
        if hmac.compare_digest(given, self._expected):
            return None
        if route not in self._token_routes and self._session(head):
            if head.method not in SAFE_METHODS and origin is None:
                return error(HTTPStatus.FORBIDDEN, "a change asked for with the session cookie must come from the "
                                                   "dashboard's own page (no Origin header)")
            return None
        return error(HTTPStatus.UNAUTHORIZED, "missing or wrong token (open the dashboard with `midframe dashboard`)",
                     ("WWW-Authenticate", 'Bearer realm="midframe"'))


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
    if method == "POST" and parts == ["failures", "seen"]:
        return target.failures_seen()
    if method == "POST" and len(parts) == 1 and parts[0] in ("pause", "resume", "stop"):
        return getattr(target, parts[0])()
    if method == "POST" and len(parts) == 3 and parts[0] == "jobs" and parts[2] in ("retry", "cancel", "front"):
        action = "move_to_front" if parts[2] == "front" else parts[2]
        return getattr(target, action)(_number(parts[1], "a job id", low=1))
    raise _NotFound(f"{method} {path}")


class ControlServer:
    """The API on ``host`` (127.0.0.1; ``port`` 0: any free one), served by a bounded :class:`HttpServer`,
    with the dashboard's routes beside it when ``web`` is given."""

    def __init__(self, target: ControlTarget, *, token: str, port: int = 0, host: str = "127.0.0.1",
                 limits: Limits = Limits(), web: WebRoutes | None = None,
                 addresses: Callable[[], Iterable[str]] = _interface_addresses) -> None:
        self._target = target
        self._token = token
        self._web = web
        try:
            self._http = HttpServer(host=host, port=port, admit=self._admit, handle=self._handle, limits=limits,
                                    name="midframe-control", streams=self._stream)
        except OSError as exc:
            raise DaemonError(f"cannot listen on {host} port {port} (daemon.api_host, daemon.api_port): "
                              f"{exc.strerror or exc}") from None
        self._host = host
        bound, self.port = self._http.address
        self.hosts = host_names(host, bound=bound, addresses=addresses)
        # Where a client on this machine connects: loopback when listening everywhere.
        local = bound if host not in WILDCARDS else ("127.0.0.1" if bound == "0.0.0.0" or
                                                     socket.has_dualstack_ipv6() else "::1")
        self.url = f"http://{_url_host(local)}:{self.port}"
        self.urls = tuple(dict.fromkeys([self.url, *(f"http://{name}:{self.port}" for name in self.hosts
                                                     if name not in LOOPBACK_NAMES)]))
        if web is not None:
            web.bind(port=self.port, urls=self.urls)
        self._gate = Gate(token=token, port=self.port, hosts=self.hosts,
                          open_routes=OPEN_ROUTES | (web.open_routes if web else frozenset()),
                          token_routes=web.token_routes if web else frozenset(),
                          session=web.has_session if web else (lambda head: False))

    def start(self) -> str:
        self._http.start()
        if not is_loopback(self._host):
            logger.warning("the control API and the dashboard are open to the network at {} (daemon.api_host: {}); "
                           "a login link from `midframe dashboard` or the token is still needed, but nothing is "
                           "encrypted: use it on a network you trust", ", ".join(self.urls[1:]) or self._host,
                           self._host)
        return self.url

    def stop(self) -> None:
        self._http.stop()

    def _admit(self, head: Head) -> Response | None:
        return self._gate.admit(head)

    def _stream(self, head: Head) -> Stream | Response | None:
        return self._web.stream(head) if self._web is not None else None

    def _handle(self, request: Request) -> Response:
        head = request.head
        if (head.method, head.path) == ("GET", "/hello"):
            return self._hello(_one(head.query, "nonce", ""))
        try:
            answer = self._web.handle(request) if self._web is not None else None
            if answer is not None:
                return answer
            result = _route(self._target, head.method, head.path, head.query)
        except _NotFound as exc:
            return error(HTTPStatus.NOT_FOUND, f"no such endpoint: {exc}")
        except JobStateError as exc:
            status = HTTPStatus.NOT_FOUND if exc.missing else HTTPStatus.CONFLICT
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
