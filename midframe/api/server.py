"""A small HTTP/1.1 server for the control API that idle, slow or hostile clients cannot exhaust.

One selector thread accepts connections and reads requests; a fixed pool of worker threads answers
complete ones. Bounds, whatever clients do:

- at most ``max_connections`` sockets are open: a new connection evicts the oldest one that has not
  finished sending its request (so a thousand idle connections cost a few dozen descriptors and no
  threads, and the newest client, which is about to send its request, gets in);
- each connection has one deadline for its whole request (a client sending a byte a second is cut off
  like a silent one);
- the head (request line and headers) and the body have size limits, and ``Content-Length`` must be
  a plain number of bytes within them;
- ``admit`` sees the head before any of the body is read and may refuse it (authentication, the Host
  check): the refused client's body is then discarded unread;
- a route that ``streams`` names (an upload) takes a larger body, admitted the same way; a worker hands
  it to the route's handler piece by piece as it arrives, each piece within ``stream_idle_s`` and the
  whole at an average of ``stream_min_rate`` bytes a second after ``stream_grace_s`` (a total deadline
  that grows with what arrived), and at most ``max_streams`` such requests run at once so the other
  workers stay free for the API;
- every answer closes its connection (``Connection: close``), so a body that was not read can never
  be taken for the next request.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from loguru import logger

from midframe.api.messages import (
    BadRequest,
    BodyIncomplete,
    Head,
    Limits,
    Request,
    Response,
    Stream,
    error,
    parse_head,
)

__all__ = ["BadRequest", "BodyIncomplete", "Head", "HttpServer", "Limits", "Request", "Response", "Stream",
           "error", "parse_head"]

_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Connection:
    __slots__ = ("sock", "deadline", "buffer", "head", "lingering")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.head: Head | None = None
        self.lingering = False


Admit = Callable[[Head], "Response | None"]
Handle = Callable[[Request], Response]
# For an admitted head: the Stream that takes its body, a refusal, or None for an ordinary request.
Streams = Callable[[Head], "Stream | Response | None"]


class HttpServer:
    """Binds at construction (so the port is known at once); ``start()`` runs it, ``stop()`` ends it."""

    def __init__(self, *, host: str, port: int, admit: Admit, handle: Handle, limits: Limits = Limits(),
                 name: str = "midframe-http", clock: Callable[[], float] = time.monotonic,
                 streams: Streams = lambda head: None) -> None:
        self.limits = limits
        self._admit = admit
        self._handle = handle
        self._streams = streams
        self._streaming = 0
        self._name = name
        self._clock = clock
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128,
                                              dualstack_ipv6=host == "::" and socket.has_dualstack_ipv6())
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._open: dict[_Connection, None] = {}  # insertion order = accept order: the first is the oldest
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._in_workers: set[socket.socket] = set()
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix=f"{name}-worker")
        self._stopping = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()  # stop() wakes the selector at once
        self._wake_reader.setblocking(False)
        self._thread: threading.Thread | None = None
        self._listen_again_at: float | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, self._wake_reader)
        self._thread = threading.Thread(target=self._run, name=self._name)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        _quietly(self._wake_writer.send, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        else:
            self._selector.close()
            self._listener.close()
        with self._answered:
            self._answered.wait_for(lambda: not self._in_workers, timeout=self.limits.stop_grace_s)
            answering = list(self._in_workers)
        for sock in answering:  # a worker stuck sending to a client that does not read
            _quietly(sock.shutdown, socket.SHUT_RDWR)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            never_answered, self._in_workers = list(self._in_workers), set()
        for sock in never_answered:
            sock.close()
        self._wake_reader.close()
        self._wake_writer.close()

    # --- the selector thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(self._timeout()):
                    if key.data is None:
                        self._accept()
                    elif key.data is self._wake_reader:
                        continue
                    else:
                        self._read(key.data)
                self._expire()
        except Exception:
            logger.exception("control API: the server loop failed; the API is down until the next start")
        finally:
            for conn in list(self._open):
                self._close(conn)
            self._selector.close()
            self._listener.close()

    def _timeout(self) -> float:
        now = self._clock()
        wake = [conn.deadline for conn in self._open]
        if self._listen_again_at is not None:
            wake.append(self._listen_again_at)
        return max(0.0, min([now + 0.2, *wake]) - now)

    def _connections(self) -> int:
        with self._lock:
            return len(self._open) + len(self._in_workers)

    def _accept(self) -> None:
        for _ in range(self.limits.max_connections):  # then read what has come in on the others
            try:
                sock, _peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._pause_listening(exc)
                elif exc.errno != errno.ECONNABORTED:
                    logger.warning("control API: accept failed: {}", exc)
                return
            sock.setblocking(False)
            if self._connections() >= self.limits.max_connections and not self._evict_oldest():
                _quietly(sock.send, error(HTTPStatus.SERVICE_UNAVAILABLE, "too many requests at once").encode())
                sock.close()
                continue
            conn = _Connection(sock, self._clock() + self.limits.request_timeout_s)
            self._open[conn] = None
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict_oldest(self) -> bool:
        oldest = next(iter(self._open), None)
        if oldest is None:
            return False
        self._close(oldest)
        return True

    def _pause_listening(self, exc: OSError) -> None:
        """Out of descriptors: stop accepting for a moment instead of spinning on a readable listener."""
        logger.warning("control API: cannot accept connections ({}); trying again shortly", exc.strerror or exc)
        self._selector.unregister(self._listener)
        self._listen_again_at = self._clock() + 0.5

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        if conn.lingering:
            return
        conn.buffer += data
        limits = self.limits
        if conn.head is None:
            end = conn.buffer.find(b"\r\n\r\n")
            if end < 0 or end > limits.max_head_bytes:
                if end >= 0 or len(conn.buffer) > limits.max_head_bytes:
                    self._refuse(conn, error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"))
                return
            try:
                head = parse_head(bytes(conn.buffer[:end]), max_body_bytes=None)
            except BadRequest as exc:
                self._refuse(conn, error(exc.status, str(exc)))
                return
            try:
                refusal = self._admit(head)
                stream = None if refusal is not None else self._streams(head)
            except Exception:
                logger.exception("control API: checking {} {} failed", head.method, head.path)
                refusal, stream = error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the daemon's log)"), None
            if isinstance(stream, Response):
                refusal, stream = stream, None
            refusal = refusal or self._too_large(head, stream)
            if refusal is None and stream is not None and not self._start_stream():
                refusal = error(HTTPStatus.SERVICE_UNAVAILABLE, "other uploads are in progress; try again when they end")
            if refusal is not None:
                self._refuse(conn, refusal)
                return
            conn.head = head
            del conn.buffer[: end + 4]
            if head.headers.get("expect", "").lower() == "100-continue" and len(conn.buffer) < head.content_length:
                _quietly(conn.sock.send, b"HTTP/1.1 100 Continue\r\n\r\n")
            if stream is not None:
                self._dispatch_stream(conn, stream)
                return
        if len(conn.buffer) >= conn.head.content_length:
            self._dispatch(conn)

    def _too_large(self, head: Head, stream: Stream | None) -> Response | None:
        limit = self.limits.max_body_bytes if stream is None else stream.max_bytes
        if head.content_length <= limit:
            return None
        message = (stream.too_large if stream is not None else "") or f"request bodies are limited to {limit} bytes"
        return error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message)

    def _start_stream(self) -> bool:
        with self._lock:
            if self._streaming >= self.limits.max_streams:
                return False
            self._streaming += 1
            return True

    def _refuse(self, conn: _Connection, response: Response) -> None:
        """Answer from this thread (a refusal is small enough for the socket's buffer), then drain what
        the client still sends for ``linger_s`` so closing does not reset the answer away."""
        try:
            conn.sock.send(response.encode())
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering = True
        conn.buffer = bytearray()
        conn.deadline = self._clock() + self.limits.linger_s

    def _dispatch(self, conn: _Connection) -> None:
        assert conn.head is not None
        self._selector.unregister(conn.sock)
        request = Request(conn.head, bytes(conn.buffer[: conn.head.content_length]))
        with self._lock:
            del self._open[conn]
            self._in_workers.add(conn.sock)
        self._pool.submit(self._answer, conn.sock, request)

    def _dispatch_stream(self, conn: _Connection, stream: Stream) -> None:
        assert conn.head is not None
        self._selector.unregister(conn.sock)
        first = bytes(conn.buffer[: conn.head.content_length])
        with self._lock:
            del self._open[conn]
            self._in_workers.add(conn.sock)
        self._pool.submit(self._answer_stream, conn.sock, conn.head, first, stream)

    def _expire(self) -> None:
        now = self._clock()
        if self._listen_again_at is not None and now >= self._listen_again_at:
            self._listen_again_at = None
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        for conn in [conn for conn in self._open if conn.deadline <= now]:
            if not conn.lingering and conn.buffer:
                _quietly(conn.sock.send, error(HTTPStatus.REQUEST_TIMEOUT, "request not complete in time").encode())
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        with self._lock:
            self._open.pop(conn, None)
        _quietly(self._selector.unregister, conn.sock)
        conn.sock.close()

    # --- the workers ------------------------------------------------------------------------------

    def _answer(self, sock: socket.socket, request: Request) -> None:
        self._respond(sock, request.head, lambda: self._handle(request))

    def _answer_stream(self, sock: socket.socket, head: Head, first: bytes, stream: Stream) -> None:
        def make() -> Response:
            try:
                return stream.handle(head, self._pieces(sock, first, head.content_length))
            finally:  # the slot is free once the body is in, before the answer goes out
                with self._lock:
                    self._streaming -= 1

        self._respond(sock, head, make)

    def _pieces(self, sock: socket.socket, first: bytes, length: int) -> Iterator[bytes]:
        limits = self.limits
        started = self._clock()
        remaining = length
        if first:
            remaining -= len(first)
            yield first
        while remaining > 0:
            if self._stopping.is_set():
                raise BodyIncomplete("the daemon is stopping")
            # By when the next byte is due: the grace, plus what arrived so far at the slowest rate taken.
            due = started + limits.stream_grace_s + (length - remaining) / limits.stream_min_rate
            left = due - self._clock()
            if left <= 0:
                raise BodyIncomplete(f"it arrived slower than {limits.stream_min_rate} bytes a second on average "
                                     f"after the first {limits.stream_grace_s:g} s")
            sock.settimeout(min(limits.stream_idle_s, left))
            try:
                data = sock.recv(min(remaining, 1 << 20))
            except TimeoutError:
                if self._clock() >= due:
                    continue  # said at the top of the loop
                raise BodyIncomplete(f"nothing arrived for {limits.stream_idle_s:g} s") from None
            except OSError as exc:
                raise BodyIncomplete(f"the connection failed: {exc.strerror or exc}") from None
            if not data:
                raise BodyIncomplete("the client closed the connection")
            remaining -= len(data)
            yield data

    def _respond(self, sock: socket.socket, head: Head, make: Callable[[], Response]) -> None:
        try:
            try:
                response = make()
            except BodyIncomplete as exc:
                response = error(HTTPStatus.BAD_REQUEST, f"the body ended early: {exc}")
            except Exception:
                logger.exception("control API: {} {} failed", head.method, head.path)
                response = error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the daemon's log)")
            sock.settimeout(self.limits.send_timeout_s)  # since 3.5 a bound on the whole sendall
            sock.sendall(response.encode())
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            sock.close()
            with self._answered:
                self._in_workers.discard(sock)
                self._answered.notify_all()


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    """For best-effort socket calls on a connection that may already be gone."""
    try:
        call(*args)
    except (OSError, KeyError, ValueError):
        pass
