"""The in-process driver: tasks run on this process's threads, at the time asked.

For local runs and tests. Nothing survives the process (a deployment whose work must outlive
an instance uses Cloud Tasks: `relay.tasks.cloud`). A `RetryLater` runs the task again as the
queue's `retry` says; a name is scheduled once for the process's life.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from relay.tasks import RetryLater, Task, TaskQueue

log = logging.getLogger("relay")

Due = tuple[float, int, Task, int, contextvars.Context]


class LocalTaskQueue(TaskQueue):
    def __init__(
        self, *, workers: int = 8, clock: Callable[[], float] = time.monotonic, **policy: Any
    ) -> None:
        super().__init__(**policy)
        self.clock = clock
        self._due: list[Due] = []
        self._order = itertools.count()
        self._names: set[str] = set()
        self._busy = 0
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._thread: threading.Thread | None = None

    def schedule(self, task: Task, attempt: int = 1) -> None:
        with self._cond:
            if task.name is not None:
                if task.name in self._names:
                    return  # scheduled once per name
                self._names.add(task.name)
            when = self.clock() + max(0.0, task.delay)
            ctx = contextvars.copy_context()  # the request's trace stays on the task's log lines
            heapq.heappush(self._due, (when, next(self._order), task, attempt, ctx))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tasks", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > self.clock():
                    timeout = self._due[0][0] - self.clock() if self._due else None
                    self._cond.wait(timeout)
                _, _, task, attempt, ctx = heapq.heappop(self._due)
                self._busy += 1
            self._pool.submit(ctx.run, self._attempt, task, attempt)

    def _attempt(self, task: Task, attempt: int) -> None:
        try:
            self.run(task.kind, task.payload, attempt)
        except RetryLater as reason:
            again = self.retry(task, attempt, reason)
            if again is not None:
                self.schedule(again, attempt + 1)
        except Exception:
            log.exception("task failed", extra={"task": task.kind, "attempt": attempt})
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is due or running (tests and the sandbox); False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._due or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True
