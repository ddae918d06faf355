"""HTTP calls with a wall-clock deadline: connect, send and the whole answer, not each read.

`requests`' timeout bounds each socket operation, so an answer trickled a byte at a time, each
byte inside the read timeout, holds a call for as long as the sender likes. A session mounted
with `DeadlineAdapter` honours `with deadline(seconds):` around a call: a watchdog thread (one
per process) shuts the socket of the call's connection down when the time is up, the blocked
read returns at once, and the call raises `DeadlineExceeded` (a `requests.Timeout`).

A connection is watched from the moment the call takes it from the pool until it goes back,
so a streamed body read after the `with` block is cut at the same deadline, and a connection
back in the pool (perhaps already serving another call) is never touched.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

RECUT_SECONDS = 0.05  # the watchdog's resolution: how late a cut may come, how often it repeats


class DeadlineExceeded(requests.Timeout):
    """The whole call took longer than its deadline (the answer may have been half sent)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the call did not end within {seconds:g}s")
        self.seconds = seconds


class _Call:
    """One call under a deadline: the connections it holds, and whether its time is up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.open = True  # the `with deadline()` block is still running
        self.connections: set[Any] = set()

    @property
    def watched(self) -> bool:
        return self.open or bool(self.connections)


_current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("deadline", default=None)
_lock = threading.Lock()  # guards every _Call.connections and _owners
_owners: weakref.WeakKeyDictionary[Any, _Call] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every request made inside the block (on a `DeadlineAdapter`) ends within `seconds` of
    entering it, or raises `DeadlineExceeded`."""
    call = _Call(seconds)
    token = _current.set(call)
    _WATCHDOG.watch(call)
    try:
        yield
    except Exception as exc:
        if call.expired and not isinstance(exc, DeadlineExceeded):
            raise DeadlineExceeded(seconds) from None
        raise
    finally:
        _current.reset(token)
        with _lock:
            call.open = False
        if call.expired:
            _detach_all(call)  # what it still holds is broken anyway


def _attach(connection: Any) -> None:
    call = _current.get()
    if call is None:
        return
    with _lock:
        call.connections.add(connection)
        _owners[connection] = call


def _detach(connection: Any) -> None:
    with _lock:
        call = _owners.pop(connection, None)
        if call is not None:
            call.connections.discard(connection)


def _detach_all(call: _Call) -> None:
    with _lock:
        for connection in call.connections:
            _owners.pop(connection, None)
        call.connections.clear()


def _cut(call: _Call) -> None:
    """Shut the call's sockets down: a read blocked on one returns at once. The plain socket's
    shutdown, even under TLS, so the SSL object stays whole for the reader to fail cleanly."""
    with _lock:  # held throughout: a connection detached meanwhile may already serve another call
        call.expired = True
        for connection in call.connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread for the process: cuts each call when its deadline passes (and again every
    RECUT_SECONDS while it still holds a connection, which may have been opening)."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, call: _Call) -> None:
        with self._wake:
            heapq.heappush(self._queue, (call.at, next(self._order), call))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            elif self._queue[0][2] is call:
                self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                while self._queue and self._queue[0][0] <= now:
                    _, _, call = heapq.heappop(self._queue)
                    if call.watched:
                        _cut(call)
                        heapq.heappush(self._queue, (now + RECUT_SECONDS, next(self._order), call))
                # at most one wake-up per RECUT_SECONDS, however many calls end meanwhile
                wait = max(self._queue[0][0] - now, RECUT_SECONDS) if self._queue else None
                self._wake.wait(wait)


_WATCHDOG = _Watchdog()


def _watched_pool(base: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """`base` with each connection it lends attached to the call in progress (if any)."""

    class Watched(base):  # type: ignore[valid-type,misc]
        def _get_conn(self, timeout: float | None = None) -> Any:
            connection = super()._get_conn(timeout)
            _attach(connection)
            return connection

        def _put_conn(self, conn: Any) -> None:
            if conn is not None:
                _detach(conn)
            super()._put_conn(conn)

    Watched.__name__ = Watched.__qualname__ = f"Watched{base.__name__}"
    return Watched


_WATCHED: dict[type[HTTPConnectionPool], type[HTTPConnectionPool]] = {}


def _watch_pools(manager: Any) -> Any:
    """Make a urllib3 pool manager (or proxy manager) lend watched connections."""
    classes = manager.pool_classes_by_scheme
    watched = {}
    for scheme, pool in classes.items():
        if pool not in _WATCHED.values():
            pool = _WATCHED.setdefault(pool, _watched_pool(pool))
        watched[scheme] = pool
    manager.pool_classes_by_scheme = watched
    return manager


class DeadlineAdapter(HTTPAdapter):
    """An `HTTPAdapter` whose calls `deadline()` can cut (direct and through a proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def mount_deadlines(session: requests.Session, **adapter: Any) -> requests.Session:
    """Mount a `DeadlineAdapter` (built with `adapter`) for http and https on `session`."""
    mounted = DeadlineAdapter(**adapter)
    session.mount("http://", mounted)
    session.mount("https://", mounted)
    return session
