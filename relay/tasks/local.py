"""The in-process driver: tasks run on this process's threads, at the time asked.

For local runs and tests. Nothing survives the process (a deployment that needs the work to
outlive an instance uses Cloud Tasks). A `RetryLater` runs the task again after its `after`, or
after a doubling backoff, up to `max_attempts`; a name is scheduled once for the process's life.
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

from relay.tasks import RetryLater, Task, TaskQueue

log = logging.getLogger("relay")

MAX_ATTEMPTS = 10
BACKOFF_MIN = 1.0
BACKOFF_MAX = 60.0


class LocalTaskQueue(TaskQueue):
    def __init__(
        self,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_min: float = BACKOFF_MIN,
        backoff_max: float = BACKOFF_MAX,
        workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.max_attempts = max_attempts
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.clock = clock
        self._due: list[tuple[float, int, Task, int, contextvars.Context]] = []
        self._order = itertools.count()
        self._names: set[str] = set()
        self._busy = 0
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._thread: threading.Thread | None = None

    def schedule(self, task: Task) -> None:
        with self._cond:
            if task.name is not None:
                if task.name in self._names:
                    return  # scheduled once per name
                self._names.add(task.name)
            self._push(task, 1, task.delay, contextvars.copy_context())

    def _push(self, task: Task, attempt: int, delay: float, ctx: contextvars.Context) -> None:
        """Called with the condition held."""
        entry = (self.clock() + max(0.0, delay), next(self._order), task, attempt, ctx)
        heapq.heappush(self._due, entry)
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
            self._pool.submit(ctx.copy().run, self._attempt, task, attempt, ctx)

    def _attempt(self, task: Task, attempt: int, ctx: contextvars.Context) -> None:
        try:
            self.run(task.kind, task.payload, attempt)
        except RetryLater as retry:
            self._again(task, attempt, retry, ctx)
        except Exception:
            log.exception("task failed", extra={"task": task.kind, "attempt": attempt})
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def _again(self, task: Task, attempt: int, retry: RetryLater, ctx: contextvars.Context) -> None:
        fields = {"task": task.kind, "attempt": attempt, "reason": retry.reason}
        if attempt >= self.max_attempts:
            log.error("task given up after its last attempt", extra=fields)
            return
        backoff = min(self.backoff_max, self.backoff_min * 2 ** (attempt - 1))
        delay = retry.after if retry.after is not None else backoff
        log.warning("task to be retried", extra={**fields, "retry_in_s": round(delay, 1)})
        with self._cond:
            self._push(task, attempt + 1, delay, ctx)

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
