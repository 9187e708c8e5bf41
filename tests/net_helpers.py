"""Sockets for the control API's tests: raw requests, and an impostor on a stale control.json's port."""

from __future__ import annotations

import json
import os
import socket
import threading


def raw(url: str, data: bytes, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send ``data`` as is to ``http://HOST:PORT``; the answer's status and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    return int(answer.split(b" ", 2)[1]), answer.partition(b"\r\n\r\n")[2]


def request(url: str, line: str, *headers: str, body: bytes = b"") -> bytes:
    """A request with the Host header a client of ``url`` sends."""
    host = url.removeprefix("http://")
    return "\r\n".join([line, f"Host: {host}", *headers, "", ""]).encode() + body


class Impostor:
    """Whatever took the port of a crashed daemon: answers every request with 200 and a made-up proof,
    and keeps every byte it was sent."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR on POSIX
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="impostor")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    body = json.dumps({"proof": "0" * 64, "pid": os.getpid()}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.close()
