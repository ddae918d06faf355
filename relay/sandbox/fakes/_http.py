"""Shared machinery for the loopback HTTP fakes.

`FakeHTTPServer` runs a `ThreadingHTTPServer` in a background thread and hands each
request, recorded as a `RecordedCall`, to the subclass's `handle()`, which returns a
`Reply`. The server is tuned so that it is never what a benchmark measures:

- HTTP/1.1 keep-alive, a listen backlog of 1024, TCP_NODELAY on every accepted socket;
- each response goes out in ONE write (status line + headers + body, always with
  Content-Length), so Nagle / delayed-ACK cannot add 40 ms stalls;
- no request logging; a client that goes away mid-response is not an error.

`stop()` also shuts down idle keep-alive connections, so a stopped fake really refuses
(or resets) further requests instead of answering from a lingering handler thread.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from relay.sandbox.net import LOOPBACK, Service


@dataclass
class RecordedCall:
    """One request as the fake received it, plus what the fake did with it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any | None
    received_at: float = field(default_factory=time.monotonic)
    status: int | None = None
    """Status answered; None while pending or when the connection was reset."""
    started: bool = False
    """True when the fake processed the request successfully (e.g. a run was created)."""


@dataclass(frozen=True)
class Reply:
    """What the handler thread sends back (or `reset=True`: abort the connection)."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    delay: float = 0.0
    reset: bool = False
    trickle: float = 0.0
    """Seconds between bytes: the answer (status line, headers, body) goes out one byte at a
    time, each inside any read timeout, the whole of it as slow as the fake likes."""


RESET = Reply(status=0, reset=True)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status=status, body=body, headers=tuple((headers or {}).items()))


def _parse_json(body: bytes) -> Any | None:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeHTTPServer) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (timeouts, resets): expected in fault tests
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        call = self._read_call()
        reply = self.server.fake.dispatch(call)
        if reply.reset:
            self._reset()
        else:
            self._write(reply)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_call(self) -> RecordedCall:
        parts = urlsplit(self.path)
        body = self._read_body()
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return RecordedCall(
            method=self.command,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            json=_parse_json(body),
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _write(self, reply: Reply) -> None:
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if reply.trickle > 0:
                self._trickle(head + reply.body, reply.trickle)
            else:
                self.wfile.write(head + reply.body)
        except OSError:
            self.close_connection = True

    def _trickle(self, data: bytes, pause: float) -> None:
        """One byte at a time until the client has all of it or goes away (or the fake stops)."""
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            if self.server.fake._stopping.wait(pause):
                raise OSError("the fake is stopping")

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 + close makes the kernel send RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # drop makefile()'s reference so close() really closes
            self.connection.close()
        except OSError:
            pass


class FakeHTTPServer(Service):
    """Base class: a loopback HTTP server in a background thread that records calls."""

    name = "fake"

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, latency: float = 0.0) -> None:
        self.host = host
        self.latency = latency
        """Seconds every response is delayed by; may be changed while running."""
        self._port = port
        self._lock = threading.RLock()
        self._calls: list[RecordedCall] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Start serving; after a stop(), start() binds the same port again."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self._port), self)
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{self._port}",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # recording -----------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, path_part: str) -> list[RecordedCall]:
        """Calls whose path contains `path_part` (a suffix or any substring)."""
        return [call for call in self.calls if path_part in call.path]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    # request handling ------------------------------------------------------------

    def dispatch(self, call: RecordedCall) -> Reply:
        """Called on the handler thread: record, handle, apply delays."""
        with self._lock:
            self._calls.append(call)
        reply = self.handle(call)
        delay = reply.delay + self.latency
        if delay > 0:
            self._stopping.wait(delay)
        call.status = None if reply.reset else reply.status
        return reply

    def handle(self, call: RecordedCall) -> Reply:
        raise NotImplementedError


class FakeApi(FakeHTTPServer):
    """A build system's API: `fail(path_part, reply, times=None)` makes requests whose path
    contains `path_part` get `reply` (`times` of them, or all), before the API's own checks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scripted: list[list[Any]] = []  # [path_part, reply, remaining or None]
        self._scripted_lock = threading.Lock()

    def fail(self, path_part: str, reply: Reply, times: int | None = None) -> None:
        with self._scripted_lock:
            self._scripted.append([path_part, reply, times])

    def reset(self) -> None:
        super().reset()
        with self._scripted_lock:
            self._scripted.clear()

    def scripted(self, call: RecordedCall) -> Reply | None:
        """The reply `fail` scripted for this call, if any."""
        with self._scripted_lock:
            for fault in self._scripted:
                part, reply, remaining = fault
                if part in call.path and remaining != 0:
                    if remaining is not None:
                        fault[2] = remaining - 1
                    return cast(Reply, reply)
        return None


def run_until_signal(fake: FakeHTTPServer) -> None:
    """Serve until SIGTERM/SIGINT; print `READY <url>` once listening (for subprocesses)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    fake.start()
    print(f"READY {fake.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
