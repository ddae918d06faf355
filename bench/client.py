"""A lean HTTP/1.1 keep-alive client for driving load: one request = one `sendall`.

The load generator shares the machine with what it measures, so it must cost little CPU:
no header parsing beyond Content-Length, the request line and headers pre-encoded.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

Request = tuple[bytes, dict[str, str]]  # body, headers


class Connection:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buffer = b""

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self._buffer = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request and read its answer; reconnects once if the server had closed."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            if self.sock is None:
                self.connect()
            try:
                assert self.sock is not None
                self.sock.sendall(raw)
                return self._read_answer()
            except (ConnectionError, EOFError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _read_answer(self) -> tuple[int, bytes]:
        head = self._read_until(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, close = None, False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:  # no length: the body runs to the end of the connection
            body = self._buffer + self._read_to_close()
            self._buffer = b""
            self.close()
            return status, body
        body = self._read_exactly(length)
        if close:
            self.close()
        return status, body

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        return chunk

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            self._buffer += self._recv()
        head, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
        return head

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._recv()
        body, self._buffer = self._buffer[:n], self._buffer[n:]
        return body

    def _read_to_close(self) -> bytes:
        chunks = []
        assert self.sock is not None
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def post(conn: Connection, path: str, request: Request) -> tuple[int, bytes, float]:
    """POST one request; returns status, body and the seconds it took."""
    body, headers = request
    started = time.perf_counter()
    status, answer = conn.request("POST", path, body, headers)
    return status, answer, time.perf_counter() - started


def closed_loop(
    url: str,
    path: str,
    requests: Sequence[Request],
    clients: int,
    check: Callable[[int, bytes], bool] = lambda status, _: status == 200,
) -> tuple[float, int]:
    """Send `requests` from `clients` keep-alive connections, each sending its next request as
    soon as its previous one is answered. Returns (seconds, number of failed answers)."""
    lock = threading.Lock()
    position = 0
    failures = 0

    def worker(conn: Connection) -> None:
        nonlocal position, failures
        while True:
            with lock:
                if position >= len(requests):
                    return
                request = requests[position]
                position += 1
            status, answer, _ = post(conn, path, request)
            if not check(status, answer):
                with lock:
                    failures += 1

    connections = [Connection(url) for _ in range(clients)]
    for conn in connections:
        conn.connect()
    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in connections]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return elapsed, failures
