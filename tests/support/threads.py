"""Calls released together, to see what concurrent deliveries (or readers) make of shared state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(count: int, fn: Callable[[int], T]) -> list[T | Exception]:
    """fn(0..count-1) in `count` threads released together: what each returned, or raised."""
    barrier = threading.Barrier(count)
    results: list[T | Exception] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        barrier.wait()
        try:
            result: T | Exception = fn(n)
        except Exception as exc:  # the outcome is what the caller compares
            result = exc
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
