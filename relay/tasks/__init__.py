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


class TaskQueue(ABC):
    def __init__(self) -> None:
        self.handlers: dict[str, TaskHandler] = {}

    def register(self, kind: str, handler: TaskHandler) -> None:
        self.handlers[kind] = handler

    @abstractmethod
    def schedule(self, task: Task) -> None:
        """Hand the task to the driver. Raises if the driver did not take it."""

    def run(self, kind: str, payload: Mapping[str, Any], attempt: int) -> None:
        """Run one attempt of a task (the driver calls this); RetryLater propagates."""
        handler = self.handlers.get(kind)
        if handler is None:
            raise UnknownTask(f"no handler for task kind {kind!r}")
        handler(payload, attempt)
