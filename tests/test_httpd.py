"""The bounded HTTP server under the control API: request parsing, deadlines, the connection cap, a
fixed number of threads, and prompt stops; real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from midframe.api.server import BadRequest, HttpServer, Limits, Response, error, parse_head


def parse(text: str, max_body_bytes: int = 65536):
    return parse_head(text.replace("\n", "\r\n").encode("latin-1"), max_body_bytes=max_body_bytes)


def test_a_plain_head_parses():
    head = parse("POST /jobs/3/retry?x=1&y=2 HTTP/1.1\nHost: 127.0.0.1:5\nContent-Length: 12\nX-A: 1\nx-a: 2")
    assert (head.method, head.path, head.content_length) == ("POST", "/jobs/3/retry", 12)
    assert head.query == {"x": ["1"], "y": ["2"]} and head.headers["x-a"] == "1, 2"


@pytest.mark.parametrize(("text", "status"), [
    ("GET /status HTTP/1.1\nContent-Length: -1", 400),
    ("GET /status HTTP/1.1\nContent-Length: +5", 400),
    ("GET /status HTTP/1.1\nContent-Length: 1e3", 400),
    ("GET /status HTTP/1.1\nContent-Length: 5\nContent-Length: 5", 400),
    ("GET /status HTTP/1.1\nContent-Length: 65537", 413),
    ("GET /status HTTP/1.1\nContent-Length: 99999999999999999999999", 400),
    ("GET /status HTTP/1.1\nTransfer-Encoding: chunked", 501),
    ("GET /status HTTP/1.1\nHost: a\nHost: b", 400),
    ("GET /status HTTP/1.1\nAuthorization: Bearer a\nAuthorization: Bearer b", 400),
    ("GET /status HTTP/1.1\nX-A: 1\n folded", 400),
    ("GET /status HTTP/1.1\nno colon here", 400),
    ("GET /status HTTP/2.0", 505),
    ("GET http://example.com/status HTTP/1.1", 400),
    ("GET  /status HTTP/1.1", 400),
    ("G(T /status HTTP/1.1", 400),
    ("GET /status?" + "&".join(f"a{i}=1" for i in range(40)) + " HTTP/1.1", 400),
])
def test_malformed_or_ambiguous_heads_are_refused(text, status):
    with pytest.raises(BadRequest) as caught:
        parse(text)
    assert caught.value.status == status


class Echo:
    """A handler that records what reached it."""

    def __init__(self, payload=None, *, fail: bool = False) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.payload = payload
        self.fail = fail

    def __call__(self, request) -> Response:
        self.seen.append((request.head.path, request.body))
        if self.fail:
            raise RuntimeError("boom")
        return Response(200, self.payload if self.payload is not None else {"bytes": len(request.body)})


def serve(handler, limits: Limits = Limits(), admit=lambda head: None) -> HttpServer:
    server = HttpServer(host="127.0.0.1", port=0, admit=admit, handle=handler, limits=limits, name="test-http")
    server.start()
    return server


def connect(server: HttpServer, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(server.address, timeout=timeout)


def exchange(server: HttpServer, data: bytes, *, timeout: float = 5.0) -> bytes:
    with connect(server, timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def code(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (TimeoutError, socket.timeout):
        return False
    except OSError:
        return True
    return True


GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def test_answers_then_closes_and_a_big_body_never_desyncs():
    handler = Echo()
    server = serve(handler)
    try:
        answer = exchange(server, GET)
        assert code(answer) == 200 and b"Connection: close" in answer
        full = exchange(server, b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n" + b"a" * 65536)
        assert code(full) == 200 and full.endswith(b'{"bytes": 65536}')
        # Over the limit: refused from the head, the body never read; the next request is unaffected.
        big = b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n" + b"GET /smuggled HTTP/1.1\r\n\r\n" * 7000
        assert code(exchange(server, big)) == 413
        assert code(exchange(server, GET)) == 200
        assert [path for path, _ in handler.seen] == ["/x", "/b", "/x"]
    finally:
        server.stop()


def test_admit_refuses_before_the_body_is_read():
    handler = Echo()
    server = serve(handler, admit=lambda head: error(401, "no") if head.path == "/private" else None)
    try:
        with connect(server) as sock:
            sock.sendall(b"POST /private HTTP/1.1\r\nHost: h\r\nContent-Length: 60000\r\n\r\n")  # body withheld
            started = time.monotonic()
            answer = sock.recv(65536)
            assert code(answer) == 401 and time.monotonic() - started < 2
        assert handler.seen == []
    finally:
        server.stop()


def test_slow_and_silent_clients_are_cut_off_at_the_deadline():
    server = serve(Echo(), Limits(request_timeout_s=0.6))
    try:
        silent, slow = connect(server), connect(server)
        started = time.monotonic()
        cut_off = False
        for byte in GET[:20]:                                 # a byte every 0.1 s: never a whole request
            try:
                slow.send(bytes([byte]))
            except OSError:
                cut_off = True
                break
            time.sleep(0.1)
        assert closed_by_server(silent, 3) and (cut_off or closed_by_server(slow, 3))
        assert time.monotonic() - started < 5
        silent.close()
        slow.close()
        assert code(exchange(server, GET)) == 200
    finally:
        server.stop()


def test_connections_are_capped_by_evicting_the_oldest_idle_and_threads_stay_fixed():
    before = threading.active_count()
    server = serve(Echo(), Limits(max_connections=8, workers=2))
    idle = []
    try:
        for _ in range(40):
            idle.append(connect(server))
        answers = []

        def ask() -> None:
            answers.append(code(exchange(server, GET)))

        askers = [threading.Thread(target=ask) for _ in range(6)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(10)
        assert answers == [200] * 6
        # the selector thread and at most two workers, however many clients came
        assert threading.active_count() <= before + 3
        assert all(closed_by_server(sock, 2) for sock in idle[:30])      # the oldest were evicted
        assert server._connections() <= 8
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_a_failing_handler_answers_500_and_the_server_goes_on():
    server = serve(Echo(fail=True))
    try:
        assert code(exchange(server, GET)) == 500
        assert code(exchange(server, GET)) == 500
    finally:
        server.stop()


def test_oversized_head_and_timeouts_get_an_answer():
    server = serve(Echo(), Limits(max_head_bytes=1024, request_timeout_s=0.5))
    try:
        assert code(exchange(server, b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")) == 431
        with connect(server) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\n")
            assert code(sock.recv(4096)) == 408
    finally:
        server.stop()


def test_stop_is_prompt_with_a_client_that_never_reads():
    server = serve(Echo(payload="x" * 8_000_000), Limits(send_timeout_s=30, stop_grace_s=0.5))
    sock = connect(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(GET)
    time.sleep(0.3)                                     # a worker is now blocked sending
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    sock.close()


def test_an_answer_under_way_when_stop_is_called_is_still_sent():
    """As with POST /stop: the handler asks for the stop, and its answer must still reach the client."""
    started: list[threading.Thread] = []

    def handler(request) -> Response:
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        started.append(stopper)
        time.sleep(0.3)                                 # stop() is waiting for this answer by now
        return Response(200, {"state": "stopping"})

    server = serve(handler)
    answer = exchange(server, GET)
    started[0].join(5)
    assert code(answer) == 200 and answer.endswith(b'{"state": "stopping"}')
    assert not started[0].is_alive()
