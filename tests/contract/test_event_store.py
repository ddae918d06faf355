"""The event store contract: every store (memory, Firestore, each behind the journal) decides
`claim` the same way and keeps what was started. Firestore runs against the emulator.

`new_instance()` is what another instance of the relay would see: the same object for the
memory store (its state is the process's), a separate client on the same collection for
Firestore (as separate Cloud Run instances have).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from relay.config import DedupSettings
from relay.models import Execution
from relay.stores import EventStore
from relay.stores.firestore import FirestoreEventStore
from relay.stores.journaled import JournaledEventStore
from relay.stores.memory import MemoryEventStore
from tests.support.threads import at_once

LEASE = 540
NewInstance = Callable[[], EventStore]


def _memory(request: pytest.FixtureRequest) -> NewInstance:
    store = MemoryEventStore(LEASE)
    return lambda: store


def _firestore(request: pytest.FixtureRequest) -> NewInstance:
    emulator = request.getfixturevalue("emulator")
    request.getfixturevalue("monkeypatch").setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    settings = DedupSettings(store="firestore", collection=f"c-{uuid.uuid4().hex[:8]}")
    return lambda: FirestoreEventStore(settings, "demo", retry_budget=1.0)


def _journaled(inner: Callable[[pytest.FixtureRequest], NewInstance]) -> Callable[..., NewInstance]:
    def make(request: pytest.FixtureRequest) -> NewInstance:
        shared = inner(request)
        return lambda: JournaledEventStore(shared(), flush_every=None)

    return make


STORES = {
    "memory": _memory,
    "journaled-memory": _journaled(_memory),
    "firestore": _firestore,
    "journaled-firestore": _journaled(_firestore),
}


@pytest.fixture(params=list(STORES))
def new_instance(request: pytest.FixtureRequest) -> NewInstance:
    return STORES[request.param](request)


def started(test_id: str, execution_id: str, route: str = "smoke") -> Execution:
    return Execution(route=route, test_id=test_id, execution_id=execution_id)


def not_started(test_id: str, outcome: str = "failed") -> Execution:
    return Execution(route="smoke", test_id=test_id, outcome=outcome, error="no")  # type: ignore[arg-type]


def test_the_first_delivery_is_new_and_another_is_busy_while_it_runs(new_instance):
    assert new_instance().claim("e", "a", 1000).kind == "new"
    assert new_instance().claim("e", "b", 1001).kind == "busy"


def test_a_finished_event_is_done_with_every_execution(new_instance):
    store = new_instance()
    key = "eas:8c1a2f3e/with/slashes:finished"
    odd_route = "ios.smoke `quoted` ünïcode/route"
    store.claim(key, "a", 1000)
    store.record(key, started("t1", "x1", route=odd_route))
    store.release(key, "a", [started("t1", "x1", odd_route), started("t2", "x2")], True, 1002)
    claim = new_instance().claim(key, "b", 1003)
    assert claim.kind == "done"
    assert {t: e.execution_id for t, e in claim.executions.items()} == {
        f"{odd_route}/test/t1": "x1",
        "smoke/test/t2": "x2",
    }


def test_a_partial_event_resumes_once_with_what_started(new_instance):
    store = new_instance()
    store.claim("e", "a", 1000)
    store.release("e", "a", [started("t1", "x1"), not_started("t2", "unknown")], False, 1001)
    claim = new_instance().claim("e", "b", 1002)
    assert claim.kind == "resume"
    assert claim.executions["smoke/test/t1"].execution_id == "x1"
    assert claim.executions["smoke/test/t2"].outcome == "unknown"
    assert new_instance().claim("e", "c", 1003).kind == "busy"  # b holds it now


def test_a_resumed_event_records_and_finishes(new_instance):
    store = new_instance()
    store.claim("e", "a", 1000)
    store.release("e", "a", [started("t1", "x1"), not_started("t2")], False, 1001)
    claim = store.claim("e", "b", 1002)
    store.record("e", started("t2", "x2"))
    store.release("e", "b", [claim.executions["smoke/test/t1"], started("t2", "x2")], True, 1003)
    done = new_instance().claim("e", "c", 1004)
    assert done.kind == "done"
    assert {e.execution_id for e in done.executions.values()} == {"x1", "x2"}


def test_a_claim_left_by_a_dead_instance_is_taken_over_after_the_lease(new_instance):
    store = new_instance()
    store.claim("e", "dead", 1000)
    store.record("e", started("t1", "x1"))
    assert new_instance().claim("e", "b", 1000 + LEASE - 1).kind == "busy"
    claim = new_instance().claim("e", "b", 1000 + LEASE + 1)
    assert claim.kind == "resume"
    assert list(claim.executions) == ["smoke/test/t1"]


def test_a_late_release_by_a_replaced_claim_records_but_keeps_the_new_holder(new_instance):
    store = new_instance()
    store.claim("e", "a", 1000)
    new_instance().claim("e", "b", 1000 + LEASE + 1)  # a died, so we thought: b took over
    store.release("e", "a", [started("t1", "x1")], True, 1000 + LEASE + 2)
    assert new_instance().claim("e", "c", 1000 + LEASE + 3).kind == "busy"  # still b's
    new_instance().release("e", "b", [started("t2", "x2")], True, 1000 + LEASE + 4)
    claim = new_instance().claim("e", "c", 1000 + LEASE + 5)
    assert set(claim.executions) == {"smoke/test/t1", "smoke/test/t2"}


def test_a_start_is_never_overwritten_by_a_later_failure(new_instance):
    store = new_instance()
    store.claim("e", "a", 1000)
    store.record("e", started("t1", "x1"))
    store.release("e", "a", [not_started("t1", "unknown")], False, 1001)
    assert new_instance().claim("e", "b", 1002).executions["smoke/test/t1"].execution_id == "x1"


def test_twenty_deliveries_at_once_give_exactly_one_new(new_instance):
    stores = [new_instance() for _ in range(20)]
    kinds = at_once(20, lambda n: stores[n].claim("eas:b1:finished", f"c{n}", 1000).kind)
    assert sorted(kinds) == ["busy"] * 19 + ["new"]


def test_twenty_deliveries_resuming_at_once_give_exactly_one_resume(new_instance):
    first = new_instance()
    first.claim("e", "a", 1000)
    first.release("e", "a", [started("t1", "x1"), not_started("t2")], False, 1001)
    stores = [new_instance() for _ in range(20)]
    kinds = at_once(20, lambda n: stores[n].claim("e", f"c{n}", 1010).kind)
    assert sorted(kinds) == ["busy"] * 19 + ["resume"]
    assert new_instance().claim("e", "late", 1020).kind == "busy"


# Hostile keys and outcomes: whatever a delivery or Revyl's answer holds, the store takes it,
# and one event it cannot take never holds up another.

ODD_KEYS = {
    "lone-surrogate": "eas:x\ud800:finished",  # EAS `"id": "x\ud800"`, a JSON escape
    "low-surrogates": "eas:\udcff\udc80:finished",
    "very-long": "gh:" + "k" * 5000,
}


@pytest.mark.parametrize("key", list(ODD_KEYS.values()), ids=list(ODD_KEYS))
def test_any_event_key_is_claimed_recorded_and_done(new_instance, key):
    store = new_instance()
    assert store.claim(key, "a", 1000).kind == "new"
    store.record(key, started("t1", "x1"))
    store.release(key, "a", [started("t1", "x1")], True, 1001)
    claim = new_instance().claim(key, "b", 1002)
    assert claim.kind == "done"
    assert claim.executions["smoke/test/t1"].execution_id == "x1"
    assert new_instance().claim("eas:plain:finished", "c", 1003).kind == "new"


def test_keys_that_differ_only_by_surrogates_are_different_events(new_instance):
    """`\\udcc3\\udca9` would encode (surrogateescape) to the bytes of `é`: one document."""
    assert new_instance().claim("eas:\udcc3\udca9:finished", "a", 1000).kind == "new"
    assert new_instance().claim("eas:é:finished", "b", 1000).kind == "new"


def test_an_outcome_too_large_or_unencodable_is_kept_capped_and_spelled_out(new_instance):
    store = new_instance()
    huge = "Revyl answered 400: " + "z" * 2_000_000 + "\ud800"
    odd = Execution(route="smoke", test_id="t1", execution_id="x1", status="queued\ud800")
    failed = Execution(route="smoke", test_id="t2", outcome="failed", error=huge)
    store.claim("e", "a", 1000)
    store.record("e", odd)
    store.release("e", "a", [odd, failed], False, 1001)
    claim = new_instance().claim("e", "b", 1002)
    assert claim.executions["smoke/test/t1"].status == "queued\\ud800"
    kept = claim.executions["smoke/test/t2"].error or ""
    assert kept.startswith("Revyl answered 400: zzz")
    assert len(kept) < 1100
    assert new_instance().claim("other", "c", 1003).kind == "new"
