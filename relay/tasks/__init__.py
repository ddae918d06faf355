"""Work after the answer, done durably: "do this later" as one small interface.

A `Task` names a handler (`kind`) and carries what it needs as JSON (ids, not objects). A
`TaskQueue` is the driver: `schedule` hands the task over, and the driver calls `run`, which
calls the handler registered for the kind, at the time asked (`delay`), again if the handler
raises `RetryLater`. A task with a `name` is scheduled once per name, so a step that two
instances (or two deliveries of one task) both schedule next runs once.

Drivers: `local` (in-process threads: local runs and tests) and `cloud` (Cloud Tasks, each task
an HTTP request back to the function). Handlers must be idempotent: a driver may run a task
twice (Cloud Tasks delivers at least once).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("relay")

NAME = re.compile(r"[A-Za-z0-9_-]{1,500}")
TASK_PATH = "_relay/task"  # where a driver that travels over HTTP posts tasks back


@dataclass(frozen=True)
class Task:
    kind: str  # which handler runs it
    payload: Mapping[str, Any] = field(default_factory=dict)  # JSON-serializable
    name: str | None = None  # scheduled once per name ([A-Za-z0-9_-], at most 500)
    delay: float = 0.0  # seconds from now

    def __post_init__(self) -> None:
        if self.name is not None and not NAME.fullmatch(self.name):
            raise ValueError(f"task name {self.name!r} is not [A-Za-z0-9_-]{{1,500}}")


class RetryLater(Exception):
    """The handler could not finish now (its target answered 5xx or 429, or was unreachable):
    run the task again, after `after` seconds if given, else after the driver's backoff."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


TaskHandler = Callable[[Mapping[str, Any], int], None]
"""`handler(payload, attempt)`: `attempt` counts from 1. Raise RetryLater to be run again."""


class UnknownTask(Exception):
    pass


MAX_ATTEMPTS = 10
BACKOFF_MIN = 1.0
BACKOFF_MAX = 300.0


class TaskQueue(ABC):
    def __init__(
        self,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_min: float = BACKOFF_MIN,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.handlers: dict[str, TaskHandler] = {}
        self.max_attempts = max_attempts
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max

    def register(self, kind: str, handler: TaskHandler) -> None:
        self.handlers[kind] = handler

    @abstractmethod
    def schedule(self, task: Task, attempt: int = 1) -> None:
        """Hand the task (its `attempt`-th run) to the driver. Raises if the driver did not
        take it; a task whose name was scheduled before is taken and dropped."""

    def run(self, kind: str, payload: Mapping[str, Any], attempt: int) -> None:
        """Run one attempt of a task (the driver calls this); RetryLater propagates."""
        handler = self.handlers.get(kind)
        if handler is None:
            raise UnknownTask(f"no handler for task kind {kind!r}")
        handler(payload, attempt)

    def retry(self, task: Task, attempt: int, reason: RetryLater) -> Task | None:
        """The task's next attempt after `reason`, or None when it has had its last (logged).
        A named task's retry has a name of its own, so the name stays scheduled once."""
        fields = {"task": task.kind, "attempt": attempt, "reason": reason.reason}
        if attempt >= self.max_attempts:
            log.error("task given up after its last attempt", extra=fields)
            return None
        backoff = min(self.backoff_max, self.backoff_min * 2.0 ** (attempt - 1))
        delay = reason.after if reason.after is not None else backoff
        log.warning("task to be retried", extra={**fields, "retry_in_s": round(delay, 1)})
        name = f"{base_name(task.name)}-a{attempt + 1}" if task.name else None
        return Task(task.kind, task.payload, name, delay)


def base_name(name: str) -> str:
    """A retry's name without its attempt suffix (`x-a3` → `x`)."""
    head, sep, tail = name.rpartition("-a")
    return head if sep and tail.isdigit() else name


def envelope(task: Task, attempt: int) -> dict[str, Any]:
    """A task as the JSON a driver carries (and Cloud Tasks posts back)."""
    return {"kind": task.kind, "payload": dict(task.payload), "name": task.name, "attempt": attempt}


def from_envelope(data: Any) -> tuple[Task, int]:
    """The task and attempt an envelope carries; ValueError if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ValueError("not a task: a JSON object with `kind` and `payload` is expected")
    payload, attempt, name = data.get("payload", {}), data.get("attempt", 1), data.get("name")
    if not isinstance(payload, dict) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError("a task's `payload` is an object and its `attempt` a positive integer")
    return Task(data["kind"], payload, name if isinstance(name, str) else None), attempt
