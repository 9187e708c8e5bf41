"""The control API's HTTP messages: limits, the request head and its parser, answers, streamed bodies.

Pure: no sockets here (the server is :mod:`midframe.api.server`, which re-exports these names).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH = re.compile(r"[0-9]{1,12}")
# Headers whose repetition makes a request ambiguous (request smuggling, a second Host or token).
_SINGLE = frozenset({"host", "content-length", "authorization", "transfer-encoding", "cookie"})


@dataclass(frozen=True)
class Limits:
    max_connections: int = 64
    workers: int = 4
    request_timeout_s: float = 10.0  # from accept to the request's last byte
    send_timeout_s: float = 5.0  # for the whole answer
    linger_s: float = 1.0  # a refused client's unread body is drained this long before closing
    stop_grace_s: float = 2.0  # answers under way when stop() is called (say, to POST /stop) get this long
    max_head_bytes: int = 16 * 1024
    max_body_bytes: int = 64 * 1024
    max_streams: int = 2  # streamed bodies (uploads) at once; each holds a worker while it lasts
    stream_idle_s: float = 30.0  # the longest wait for the next piece of a streamed body
    # A streamed body's total deadline: after the first ``stream_grace_s`` it must keep an average of
    # ``stream_min_rate`` bytes a second (so a 1 GB upload has 4.6 h, a trickle of a byte now and then
    # is cut off after the grace, whatever it declared).
    stream_grace_s: float = 60.0
    stream_min_rate: int = 64 * 1024


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names in lower case; values as sent (latin-1)
    content_length: int


@dataclass(frozen=True)
class Request:
    head: Head
    body: bytes


@dataclass(frozen=True)
class Response:
    """JSON of ``payload``, or ``body`` as it is with its ``content_type`` (a page, a script)."""

    status: int
    payload: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str = "application/json"

    def encode(self) -> bytes:
        body = json.dumps(self.payload).encode() if self.body is None else self.body
        lines = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            "Cache-Control: no-store",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def error(status: int, message: str, *headers: tuple[str, str]) -> Response:
    return Response(status, {"error": message}, tuple(headers))


class BadRequest(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyIncomplete(ConnectionError):
    """A streamed body ended before its ``Content-Length``: the client closed, went silent, or the
    server is stopping."""


@dataclass(frozen=True)
class Stream:
    """A route that reads its own body: ``handle(head, pieces)``, where ``pieces`` yields the body's
    bytes as they arrive (exactly ``Content-Length`` of them, or raises :class:`BodyIncomplete`)."""

    max_bytes: int
    handle: Callable[[Head, Iterator[bytes]], Response]
    too_large: str = ""


def parse_head(raw: bytes, *, max_body_bytes: int | None) -> Head:
    """The request line and headers (``raw`` without the blank line that ends them); BadRequest if
    they are malformed, ambiguous, or announce a body this server does not take (``None``: the
    caller checks the length against the route's own limit)."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    if not target.startswith("/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the request target must be a path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
        name, value = name.lower(), value.strip(" \t")
        if name in headers:
            if name in _SINGLE:
                raise BadRequest(HTTPStatus.BAD_REQUEST, f"more than one {name} header")
            value = f"{headers[name]}, {value}"
        headers[name] = value
    if "transfer-encoding" in headers:
        raise BadRequest(HTTPStatus.NOT_IMPLEMENTED, "a request body needs a Content-Length (no Transfer-Encoding)")
    length = headers.get("content-length", "0")
    if not _LENGTH.fullmatch(length):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length must be a number of bytes")
    if max_body_bytes is not None and int(length) > max_body_bytes:
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request bodies are limited to {max_body_bytes} bytes")
    url = urllib.parse.urlsplit(target)
    try:
        query = urllib.parse.parse_qs(url.query, max_num_fields=32)
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "too many query parameters") from None
    return Head(method, target, url.path, query, headers, int(length))
