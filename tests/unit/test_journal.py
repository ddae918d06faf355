"""The journal over a shared store that refuses some events for good (`Unstorable`): those are
parked on this instance, logged, never retried, and never hold up another event.

The shared store is the memory store with one rule added, as a test double of the contract
(the Firestore store raises `Unstorable` for what Firestore refuses for good: see
tests/integration/test_firestore_store.py)."""

from __future__ import annotations

import logging

import pytest

from relay.models import Execution
from relay.stores import Unstorable
from relay.stores.journaled import JournaledEventStore
from relay.stores.memory import MemoryEventStore

LEASE = 540


class Refusing(MemoryEventStore):
    """Refuses for good every write of a key starting with `poison`; `down` refuses every call
    as an outage would (an error that may pass)."""

    down = False

    def _check(self, key: str) -> None:
        if self.down:
            raise ConnectionError("the store is unreachable")
        if key.startswith("poison"):
            raise Unstorable(key, "InvalidArgument: the document exceeds 1 MiB")

    def claim(self, key, claim_id, now):
        if self.down:
            raise ConnectionError("the store is unreachable")
        return super().claim(key, claim_id, now)

    def record(self, key, execution):
        self._check(key)
        super().record(key, execution)

    def release(self, key, claim_id, executions, done, now):
        self._check(key)
        super().release(key, claim_id, executions, done, now)


def started(test_id: str, execution_id: str) -> Execution:
    return Execution(route="smoke", test_id=test_id, execution_id=execution_id)


@pytest.fixture
def shared() -> Refusing:
    return Refusing(LEASE)


def test_an_event_refused_for_good_is_parked_and_every_other_event_goes_on(shared, caplog):
    store = JournaledEventStore(shared, flush_every=None)
    assert store.claim("poison-1", "a", 1000).kind == "new"
    with pytest.raises(Unstorable):
        store.release("poison-1", "a", [started("t1", "x1")], True, 1001)
    assert list(store.parked()) == ["poison-1"]
    assert store.pending() == {}  # nothing left for the flusher to retry forever
    refusal = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert refusal.event == "poison-1"  # type: ignore[attr-defined]
    for n in range(3):
        key = f"eas:build-{n}:finished"
        assert store.claim(key, f"c{n}", 1002).kind == "new"
        store.release(key, f"c{n}", [started("t1", f"y{n}")], True, 1003)
    redelivered = store.claim("poison-1", "b", 1004)  # answered here, from the parked outcome
    assert redelivered.kind == "done"
    assert redelivered.executions["smoke/test/t1"].execution_id == "x1"


def test_an_unfinished_parked_event_is_refused_without_asking_the_store_again(shared):
    store = JournaledEventStore(shared, flush_every=None)
    store.claim("poison-2", "a", 1000)
    with pytest.raises(Unstorable):
        store.release("poison-2", "a", [started("t1", "x1")], False, 1001)
    with pytest.raises(Unstorable):  # never `new`: what started is known here
        store.claim("poison-2", "b", 1002)
    with pytest.raises(Unstorable):  # the pipeline releases a failed claim: nothing is lost
        store.release("poison-2", "b", [], False, 1003)
    assert store.parked()["poison-2"].executions["smoke/test/t1"].execution_id == "x1"


def test_a_flush_parks_what_is_refused_for_good_and_writes_the_rest(shared):
    store = JournaledEventStore(shared, flush_every=None)
    for key in ("poison-3", "eas:fine:finished"):
        store.claim(key, "a", 1000)
    shared.down = True  # an outage: both outcomes are journaled
    for key in ("poison-3", "eas:fine:finished"):
        with pytest.raises(ConnectionError):
            store.release(key, "a", [started("t1", "x1")], True, 1001)
    assert store.flush(1002) is False  # still down: every claim waits for the store
    shared.down = False
    assert store.flush(1003) is True
    assert store.pending() == {}
    assert list(store.parked()) == ["poison-3"]
    assert shared.claim("eas:fine:finished", "b", 1004).kind == "done"
    assert store.claim("eas:next:finished", "c", 1005).kind == "new"
