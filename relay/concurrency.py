"""Running the starts of one delivery side by side, on threads shared by every delivery."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


class OnceEach(Generic[K, R]):
    """Runs `fn` once per distinct argument, in the first thread that asks; the others wait
    for that result."""

    def __init__(self, fn: Callable[[K], R]) -> None:
        self._fn = fn
        self._futures: dict[K, Future[R]] = {}
        self._lock = threading.Lock()

    def get(self, argument: K) -> R:
        with self._lock:
            future = self._futures.get(argument)
            owner = future is None
            if future is None:
                future = self._futures[argument] = Future()
        if owner:
            try:
                future.set_result(self._fn(argument))
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


# Made once, reused by every webhook: a fan-out to 50 tests does not start and join 50 threads.
# Threads are created only when none is idle, so it holds as many as were ever busy at once.
_POOL = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="relay")


def concurrently(fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
    """`fn` over `items`, at most `limit` at a time, results in order. `fn` should not raise:
    an exception is raised here only after every call has ended.
    Each call runs in a copy of the caller's context, so log lines keep the request's trace."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    context = contextvars.copy_context()
    gate = threading.Semaphore(limit)

    def run(item: T) -> R:
        try:
            return context.copy().run(fn, item)
        finally:
            gate.release()

    futures = []
    for item in items:
        gate.acquire()
        futures.append(_POOL.submit(run, item))
    wait(futures)  # every call ends before an error (there should be none) is raised
    return [future.result() for future in futures]
