"""Idempotency: what was started for each event, so a redelivery starts nothing twice.

Per event key the store keeps a claim (who is handling it, since when), a state and, per
target, the `Execution` it produced. `claim` decides what a delivery may do:
- `new`: first delivery: run every target;
- `resume`: an earlier delivery ended partially, or its handler died (its claim is older than
  the lease): run only the targets not yet started;
- `done`: everything started already: answer `duplicate` with the recorded executions;
- `busy`: another delivery holds a live claim: answer 409 `in_progress`.

Stores: `MemoryEventStore` (one process: local runs, tests) and `FirestoreEventStore` (shared by
every instance of a deployment). A shared store is wrapped in `JournaledEventStore`, which keeps
what it could not write on this instance and writes it when the store answers again, so an outage
after runs started does not make a redelivery start them again.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from relay.config import DedupSettings
from relay.models import Execution

ClaimKind = Literal["new", "resume", "done", "busy"]
log = logging.getLogger("relay")


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


class StoreDown(Exception):
    """The shared store is unreachable and this instance holds outcomes it could not write."""


@dataclass
class _Pending:
    """Outcomes the shared store did not take: `final` once the delivery has finished."""

    claim_id: str
    executions: dict[str, Execution] = field(default_factory=dict)
    done: bool = False
    final: bool = False


class JournaledEventStore(EventStore):
    """A shared store plus a journal, on this instance, of the outcomes it failed to write.

    Runs that started while the store was down are not forgotten: the journal answers for them
    (a redelivery reaching this instance is a `duplicate`), and every later claim first tries to
    write the journal to the shared store. Failures are still raised, so the caller can say so.
    """

    def __init__(
        self, shared: EventStore, flush_limit: int = 20, flush_every: float | None = 2.0
    ) -> None:
        super().__init__(shared.lease_seconds)
        self.shared = shared
        self.flush_limit = flush_limit
        self.flush_every = flush_every  # seconds between background flushes (None: only on claim)
        self._flusher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._live: dict[str, str] = {}  # event key -> claim id, for deliveries running here
        self._journal: dict[str, _Pending] = {}

    def pending(self) -> dict[str, _Pending]:
        with self._lock:
            return dict(self._journal)

    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        with self._lock:
            if key in self._live:
                return Claim("busy")
        flushed = self.flush(now)
        with self._lock:
            pending = self._journal.get(key)
        if pending is not None:  # the store did not take it: answer from the journal
            if pending.done:
                return Claim("done", dict(pending.executions))
            raise StoreDown(f"the event store is unreachable and event {key} is unfinished")
        if not flushed:
            raise StoreDown("the event store is unreachable (it failed a moment ago)")
        claim = self.shared.claim(key, claim_id, now)
        if claim.kind in ("new", "resume"):
            with self._lock:
                self._live[key] = claim_id
        return claim

    def record(self, key: str, execution: Execution) -> None:
        try:
            self.shared.record(key, execution)
        except Exception:
            with self._lock:
                pending = self._journal.setdefault(key, _Pending(self._live.get(key, "")))
                old = pending.executions.get(execution.target)
                pending.executions[execution.target] = merge(old, execution)
            raise

    def release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        with self._lock:
            self._live.pop(key, None)
            pending = self._journal.pop(key, None)
        merged = dict(pending.executions) if pending else {}
        for execution in executions:
            merged[execution.target] = merge(merged.get(execution.target), execution)
        try:
            self.shared.release(key, claim_id, list(merged.values()), done, now)
        except Exception:
            with self._lock:
                self._journal[key] = _Pending(claim_id, merged, done, final=True)
                self._start_flusher()
            raise

    def _start_flusher(self) -> None:
        """Keep trying to write the journal in the background, so other instances see it
        without waiting for a webhook to reach this one. Called with the lock held."""
        if self.flush_every is None or (self._flusher and self._flusher.is_alive()):
            return
        self._flusher = threading.Thread(target=self._flush_loop, name="journal", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(self.flush_every or 0)
            self.flush(time.time())
            with self._lock:
                if not any(p.final for p in self._journal.values()):
                    self._flusher = None
                    return

    def flush(self, now: float) -> bool:
        """Write finished journal entries to the shared store; False at the first failure."""
        with self._lock:
            ready = [(k, p) for k, p in self._journal.items() if p.final][: self.flush_limit]
        for key, pending in ready:
            executions = list(pending.executions.values())
            try:
                self.shared.release(key, pending.claim_id, executions, pending.done, now)
            except Exception as exc:
                log.warning(
                    "the event store is still unreachable; outcomes stay journaled here",
                    extra={"event": key, "reason": type(exc).__name__},
                )
                return False
            with self._lock:
                if self._journal.get(key) is pending:
                    del self._journal[key]
            log.info("journaled outcome written to the event store", extra={"event": key})
        return True


def build_store(settings: DedupSettings, project: str | None) -> EventStore:
    if settings.store == "firestore":
        from relay.events_firestore import FirestoreEventStore

        return JournaledEventStore(FirestoreEventStore(settings, project))
    return MemoryEventStore(settings.lease_seconds)
