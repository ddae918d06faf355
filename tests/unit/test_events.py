"""What only some stores do: the memory store's limit, the journal over a failing shared
store. What every store does is the contract suite (tests/contract/test_event_store.py)."""

from __future__ import annotations

import time

import pytest

from relay.config import DedupSettings
from relay.models import Execution
from relay.stores import Claim, merge
from relay.stores.journaled import JournaledEventStore, StoreDown
from relay.stores.memory import MemoryEventStore
from relay.wiring import build_store

LEASE = 540


def started(test_id: str, execution_id: str) -> Execution:
    return Execution(route="smoke", test_id=test_id, execution_id=execution_id)


def failed(test_id: str, outcome: str = "failed") -> Execution:
    return Execution(route="smoke", test_id=test_id, outcome=outcome, error="no")  # type: ignore[arg-type]


class FlakyStore(MemoryEventStore):
    """A shared store that can be switched off: every call raises while `down`."""

    def __init__(self) -> None:
        super().__init__(LEASE)
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("store unreachable")

    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        self._check()
        return super().claim(key, claim_id, now)

    def record(self, key: str, execution: Execution) -> None:
        self._check()
        super().record(key, execution)

    def release(self, key, claim_id, executions, done, now) -> None:
        self._check()
        super().release(key, claim_id, executions, done, now)


# --- memory store ------------------------------------------------------------------------------


def test_the_memory_store_forgets_the_oldest_events_past_its_limit():
    store = MemoryEventStore(LEASE, max_events=3)
    for key in "abcd":
        store.claim(key, "c", 0)
        store.release(key, "c", [started("t", key)], True, 1)
    assert store.claim("a", "x", 2).kind == "new"  # forgotten: "a" was the oldest
    assert store.claim("d", "x", 2).kind == "done"


def test_an_event_still_being_handled_is_not_the_one_forgotten():
    store = MemoryEventStore(LEASE, max_events=2)
    store.claim("running", "a", 0)  # oldest, still handled (live claim)
    store.claim("finished", "b", 1)
    store.release("finished", "b", [started("t", "x")], True, 2)
    assert store.claim("third", "c", 3).kind == "new"  # forgets "finished", not "running"
    assert store.claim("running", "d", 4).kind == "busy"  # a redelivery is still held off
    assert store.claim("finished", "e", 5).kind == "new"


def test_an_abandoned_claim_may_be_forgotten():
    store = MemoryEventStore(LEASE, max_events=1)
    store.claim("abandoned", "a", 0)
    store.claim("next", "b", LEASE + 1)  # a's lease is over: it is no longer a live claim
    assert store.claim("abandoned", "c", LEASE + 2).kind == "new"


def test_a_record_for_an_unclaimed_event_creates_nothing():
    store = MemoryEventStore(LEASE)
    store.record("never-claimed", started("t1", "x1"))
    assert store.claim("never-claimed", "a", 0) == Claim("new")


def test_merge_never_overwrites_a_start_with_a_later_failure():
    assert merge(started("t1", "x1"), failed("t1")).execution_id == "x1"
    assert merge(failed("t1"), started("t1", "x2")).execution_id == "x2"
    assert merge(None, failed("t1")).outcome == "failed"


def test_build_store_picks_the_configured_store_without_contacting_it():
    assert isinstance(build_store(DedupSettings(), None), MemoryEventStore)
    store = build_store(DedupSettings(store="firestore", collection="c", ttl_days=7), "demo")
    assert isinstance(store, JournaledEventStore)
    assert type(store.shared).__name__ == "FirestoreEventStore"
    assert store.lease_seconds == DedupSettings().lease_seconds


# --- the journal over a shared store --------------------------------------------------------


@pytest.fixture
def shared() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def store(shared: FlakyStore) -> JournaledEventStore:
    return JournaledEventStore(shared, flush_every=None)  # flushed by claims only


def test_the_journal_passes_everything_through_while_the_store_works(store, shared):
    assert store.claim("e", "a", 0).kind == "new"
    store.record("e", started("t1", "x1"))
    store.release("e", "a", [started("t1", "x1")], True, 1)
    assert store.pending() == {}
    assert shared.claim("e", "z", 2).kind == "done"


def test_a_claim_that_fails_raises_and_journals_nothing(store, shared):
    shared.down = True
    with pytest.raises(ConnectionError):
        store.claim("e", "a", 0)
    assert store.pending() == {}


def test_outcomes_the_store_refused_answer_redeliveries_and_are_written_later(store, shared):
    store.claim("e", "a", 0)
    shared.down = True
    with pytest.raises(ConnectionError):
        store.record("e", started("t1", "x1"))
    with pytest.raises(ConnectionError):
        store.release("e", "a", [started("t1", "x1"), started("t2", "x2")], True, 1)
    assert store.pending()["e"].final

    redelivery = store.claim("e", "b", 2)  # the store is still down: the journal answers
    assert redelivery.kind == "done"
    assert {e.execution_id for e in redelivery.executions.values()} == {"x1", "x2"}

    shared.down = False
    assert store.claim("other", "c", 3).kind == "new"  # any claim writes the journal first
    assert store.pending() == {}
    assert shared.claim("e", "d", 4).kind == "done"
    assert store.claim("e", "d", 4).kind == "done"


def test_an_unfinished_journaled_event_is_not_claimed_while_the_store_is_down(store, shared):
    store.claim("e", "a", 0)
    shared.down = True
    with pytest.raises(ConnectionError):
        store.release("e", "a", [started("t1", "x1"), failed("t2")], False, 1)
    with pytest.raises(StoreDown):
        store.claim("e", "b", 2)
    shared.down = False
    claim = store.claim("e", "b", 3)  # written first, then resumed with what started
    assert claim.kind == "resume"
    assert claim.executions["smoke/test/t1"].execution_id == "x1"


def test_a_delivery_running_on_this_instance_makes_others_busy_without_asking_the_store(
    store, shared
):
    store.claim("e", "a", 0)
    calls = shared.calls
    assert store.claim("e", "b", 1).kind == "busy"
    assert shared.calls == calls
    store.release("e", "a", [started("t1", "x1")], True, 2)
    assert store.claim("e", "b", 3).kind == "done"


def test_a_record_that_failed_is_healed_by_a_release_that_worked(store, shared):
    store.claim("e", "a", 0)
    shared.down = True
    with pytest.raises(ConnectionError):
        store.record("e", started("t1", "x1"))
    shared.down = False
    store.release("e", "a", [failed("t2")], False, 1)  # the pipeline's own list lacked t1
    assert store.pending() == {}
    claim = shared.claim("e", "b", 2)
    assert claim.executions["smoke/test/t1"].execution_id == "x1"


def test_the_journal_is_written_in_the_background_once_the_store_is_back(shared):
    store = JournaledEventStore(shared, flush_every=0.05)
    store.claim("e", "a", 0)
    shared.down = True
    with pytest.raises(ConnectionError):
        store.release("e", "a", [started("t1", "x1")], True, 1)
    time.sleep(0.2)  # the flusher tries, and fails, while the store is down
    assert "e" in store.pending()
    shared.down = False
    deadline = time.monotonic() + 5
    while store.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.pending() == {}
    assert shared.claim("e", "b", 2).kind == "done"  # no webhook reached this instance
