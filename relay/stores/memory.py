"""The event store of one process: local runs and single-instance tests."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from relay.models import Execution
from relay.stores import Claim, EventStore, merge

log = logging.getLogger("relay")


@dataclass
class _Record:
    state: str
    claim_id: str
    claimed_at: float
    executions: dict[str, Execution] = field(default_factory=dict)


MEMORY_STORE_EVENTS = 1000


class MemoryEventStore(EventStore):
    """For local runs and single-instance tests: state lives and dies with the process.

    It remembers the `max_events` most recent events (1,000: enough for any redelivery window
    of build webhooks), so a long-lived instance does not grow by ~2 KB per event forever.
    Events still being handled (a live claim) are never the ones forgotten."""

    def __init__(self, lease_seconds: float, max_events: int = MEMORY_STORE_EVENTS) -> None:
        super().__init__(lease_seconds)
        self.max_events = max_events
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        with self._lock:
            record = self._records.get(key)
            if record is None:
                if len(self._records) >= self.max_events:
                    self._forget_oldest(now)
                self._records[key] = _Record("claimed", claim_id, now)
                return Claim("new")
            kind = self.decide(record.state, record.claimed_at, now)
            if kind == "resume":
                record.state, record.claim_id, record.claimed_at = "claimed", claim_id, now
            return Claim(kind, dict(record.executions))

    def _forget_oldest(self, now: float) -> None:
        """Forget the oldest event no delivery is handling, so a redelivery of an event in
        progress is still `busy`. Called with the lock held; if every event is in progress,
        none is forgotten (the store grows past `max_events` for that while)."""
        for key, record in self._records.items():
            if self.decide(record.state, record.claimed_at, now) != "busy":
                del self._records[key]
                return

    def record(self, key: str, execution: Execution) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is None:  # not claimed here: `release` writes the outcome
                log.warning("outcome of an unclaimed event not recorded", extra={"event": key})
                return
            old = record.executions.get(execution.target)
            record.executions[execution.target] = merge(old, execution)

    def release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        with self._lock:
            record = self._records.setdefault(key, _Record("claimed", claim_id, now))
            for execution in executions:
                old = record.executions.get(execution.target)
                record.executions[execution.target] = merge(old, execution)
            if record.claim_id == claim_id:
                record.state = "done" if done else "partial"
