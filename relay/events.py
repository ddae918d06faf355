"""Idempotency: what was started for each event, so a redelivery starts nothing twice.

Per event key the store keeps a claim (who is handling it, since when), a state and, per
target, the `Execution` it produced. `claim` decides what a delivery may do:
- `new`: first delivery: run every target;
- `resume`: an earlier delivery ended partially, or its handler died (its claim is older than
  the lease): run only the targets not yet started;
- `done`: everything started already: answer `duplicate` with the recorded executions;
- `busy`: another delivery holds a live claim: answer 409 `in_progress`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from relay.config import DedupSettings
from relay.models import Execution

ClaimKind = Literal["new", "resume", "done", "busy"]


@dataclass(frozen=True)
class Claim:
    kind: ClaimKind
    executions: dict[str, Execution] = field(default_factory=dict)


class EventStore(ABC):
    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds

    @abstractmethod
    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        """Take the event for this delivery, or say why not (see the module docstring)."""

    @abstractmethod
    def record(self, key: str, execution: Execution) -> None:
        """Persist one target's outcome as soon as it is known."""

    @abstractmethod
    def release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        """Write every outcome and end the claim: `done` when every target has started."""

    def decide(self, state: str, claimed_at: float, now: float) -> ClaimKind:
        if state == "done":
            return "done"
        if state == "claimed" and now - claimed_at < self.lease_seconds:
            return "busy"
        return "resume"


def merge(old: Execution | None, new: Execution) -> Execution:
    """A started execution is never overwritten by a later failure of the same target."""
    return old if old is not None and old.outcome == "started" else new


@dataclass
class _Record:
    state: str
    claim_id: str
    claimed_at: float
    executions: dict[str, Execution] = field(default_factory=dict)


class MemoryEventStore(EventStore):
    """For local runs and single-instance tests: state lives and dies with the process."""

    def __init__(self, lease_seconds: float) -> None:
        super().__init__(lease_seconds)
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        with self._lock:
            record = self._records.get(key)
            if record is None:
                self._records[key] = _Record("claimed", claim_id, now)
                return Claim("new")
            kind = self.decide(record.state, record.claimed_at, now)
            if kind == "resume":
                record.state, record.claim_id, record.claimed_at = "claimed", claim_id, now
            return Claim(kind, dict(record.executions))

    def record(self, key: str, execution: Execution) -> None:
        with self._lock:
            executions = self._records[key].executions
            executions[execution.target] = merge(executions.get(execution.target), execution)

    def release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        with self._lock:
            record = self._records[key]
            for execution in executions:
                old = record.executions.get(execution.target)
                record.executions[execution.target] = merge(old, execution)
            if record.claim_id == claim_id:
                record.state = "done" if done else "partial"


def build_store(settings: DedupSettings, project: str | None) -> EventStore:
    if settings.store == "firestore":
        from relay.events_firestore import FirestoreEventStore

        return FirestoreEventStore(settings, project)
    return MemoryEventStore(settings.lease_seconds)
