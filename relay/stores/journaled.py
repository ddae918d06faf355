"""A shared event store plus this instance's journal of what the store did not take."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from relay.models import Execution
from relay.stores import Claim, EventStore, Unstorable, merge

log = logging.getLogger("relay")

PARKED_EVENTS = 1000  # events the shared store refused for good, remembered here (oldest go)


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

    An event the shared store refuses for good (`Unstorable`) is *parked*: kept here to answer
    its redeliveries, logged as an ERROR, never written again, and never in the way of the
    journal's other entries (a transient failure stops a flush: the store is down for all).
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
        self._parked: dict[str, _Pending] = {}

    def pending(self) -> dict[str, _Pending]:
        with self._lock:
            return dict(self._journal)

    def parked(self) -> dict[str, _Pending]:
        with self._lock:
            return dict(self._parked)

    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        with self._lock:
            if key in self._live:
                return Claim("busy")
        flushed = self.flush(now)
        with self._lock:
            parked = self._parked.get(key)
            pending = self._journal.get(key) or parked
        if pending is not None:  # the store did not take it: answer from the journal
            if pending.done:
                return Claim("done", dict(pending.executions))
            if parked is not None:
                raise Unstorable(key, "its outcome so far is kept on this instance only")
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
            parked = self._parked.get(key)
            pending = self._journal.pop(key, None) or parked
        merged = dict(pending.executions) if pending else {}
        for execution in executions:
            merged[execution.target] = merge(merged.get(execution.target), execution)
        finished = _Pending(claim_id, merged, done, final=True)
        if parked is not None:  # refused for good already: not asked again
            self._park(key, finished, None)
            raise Unstorable(key, "its outcome is kept on this instance only")
        try:
            self.shared.release(key, claim_id, list(merged.values()), done, now)
        except Unstorable as exc:
            self._park(key, finished, exc)
            raise
        except Exception:
            with self._lock:
                self._journal[key] = finished
                self._start_flusher()
            raise

    def _park(self, key: str, pending: _Pending, refusal: Unstorable | None) -> None:
        """Keep an event the shared store refused for good here, out of the journal."""
        with self._lock:
            newer = self._journal.pop(key, None)
            if newer is not None and newer is not pending:  # journaled while being flushed
                for target, execution in newer.executions.items():
                    pending.executions[target] = merge(pending.executions.get(target), execution)
            self._parked.pop(key, None)
            self._parked[key] = pending  # the newest last: the oldest are forgotten first
            while len(self._parked) > PARKED_EVENTS:
                del self._parked[next(iter(self._parked))]
        if refusal is not None:
            log.error(
                "the event store refuses this event for good: its outcome is kept on this "
                "instance only, and no other event waits for it",
                extra={"event": key, "reason": refusal.reason},
            )

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
        """Write finished journal entries to the shared store; False at the first failure that
        may pass (the store is down), while an entry refused for good is parked."""
        with self._lock:
            ready = [(k, p) for k, p in self._journal.items() if p.final][: self.flush_limit]
        for key, pending in ready:
            executions = list(pending.executions.values())
            try:
                self.shared.release(key, pending.claim_id, executions, pending.done, now)
            except Unstorable as exc:
                self._park(key, pending, exc)
                continue
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
