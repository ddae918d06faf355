"""What only the Firestore store does, against a real Firestore emulator on loopback (what
every store does is the contract suite, tests/contract/test_event_store.py).

Each test uses its own collection; "instances" are separate FirestoreEventStore objects, each
with its own client and channel, as separate Cloud Run instances would have.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable

import pytest

from relay.config import DedupSettings
from relay.models import Execution
from relay.stores.firestore import TTL_FIELD, FirestoreEventStore
from relay.stores.journaled import JournaledEventStore, StoreDown

LEASE = 540


@pytest.fixture
def new_store(emulator, monkeypatch) -> Callable[[], FirestoreEventStore]:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    settings = DedupSettings(
        store="firestore", collection=f"events-{uuid.uuid4().hex[:8]}", ttl_days=30
    )
    return lambda: FirestoreEventStore(settings, "demo", retry_budget=1.0)


def started(target: str, execution_id: str, route: str = "smoke") -> Execution:
    return Execution(route=route, test_id=target, execution_id=execution_id)


def test_the_document_carries_the_key_state_and_the_ttl_field(new_store):
    store = new_store()
    now = time.time()
    store.claim("gh:delivery-1", "a", now)
    store.release("gh:delivery-1", "a", [started("t1", "x1")], True, now)
    data = store._ref("gh:delivery-1").get().to_dict()
    assert data["key"] == "gh:delivery-1"
    assert data["state"] == "done"
    expiry = data[TTL_FIELD]
    assert isinstance(expiry, datetime.datetime)
    assert abs(expiry.timestamp() - (now + 30 * 86400)) < 5


def test_a_takeover_whose_holder_died_before_updating_the_event_is_skipped(new_store):
    store = new_store()
    store.claim("e", "a", 1000)
    store.release("e", "a", [], False, 1001)
    # a delivery won the lock of generation 2, then died before updating the event
    store._ref("e", 2).create({"key": "e", "claim_id": "ghost", "claimed_at": 1002})
    assert store.claim("e", "b", 1003).kind == "busy"
    claim = store.claim("e", "c", 1002 + LEASE + 1)
    assert claim.kind == "resume"
    assert store._ref("e").get().to_dict()["generation"] == 3


def test_what_firestore_refuses_for_good_is_told_from_what_may_pass():
    from google.api_core import exceptions

    from relay.stores.firestore import refused_for_good

    permanent = [
        exceptions.InvalidArgument("Document exceeds the maximum allowed size of 1,048,576"),
        exceptions.OutOfRange("value out of range"),
        UnicodeEncodeError("utf-8", "x\ud800", 1, 2, "surrogates not allowed"),
        TypeError("Cannot convert to a Firestore Value"),
    ]
    transient = [
        exceptions.ServiceUnavailable("unavailable"),
        exceptions.DeadlineExceeded("deadline"),
        exceptions.Aborted("contention"),
        exceptions.PermissionDenied("the service account lost its role"),
        exceptions.RetryError("budget spent", cause=None),
        RuntimeError("event e: lost 5 conditional writes in a row"),
    ]
    assert [refused_for_good(e) for e in permanent] == [True] * len(permanent)
    assert [refused_for_good(e) for e in transient] == [False] * len(transient)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # the odd value is the point
def test_a_refusal_for_good_is_raised_as_unstorable_naming_the_event(new_store):
    from relay.stores import Unstorable

    store = new_store()
    store.claim("e", "a", 1000)
    with pytest.raises(Unstorable) as caught:  # a value Firestore has no type for
        store.release(
            "e", "a", [started("t1", "x1").model_copy(update={"status": object()})], True, 1
        )
    assert caught.value.key == "e"


def test_an_outage_mid_run_is_journaled_and_written_once_firestore_is_back(emulator, new_store):
    store = JournaledEventStore(new_store())
    assert store.claim("e", "a", 1000).kind == "new"
    store.record("e", started("t1", "x1"))
    emulator.stop()
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the client raises
            store.record("e", started("t2", "x2"))
        with pytest.raises(Exception):  # noqa: B017, PT011
            store.release("e", "a", [started("t1", "x1"), started("t2", "x2")], True, 1001)
        assert store.claim("e", "b", 1002).kind == "done"  # from the journal
        with pytest.raises(StoreDown):  # an event it knows nothing of
            store.claim("other", "c", 1002)
    finally:
        emulator.start()  # same port, empty: the records made before the outage are gone
    deadline = time.monotonic() + 20
    while store.pending() and time.monotonic() < deadline:
        store.flush(1003)
        time.sleep(0.1)
    assert store.pending() == {}
    claim = new_store().claim("e", "d", 1004)  # another instance sees the journaled outcome
    assert claim.kind == "done"
    assert {e.execution_id for e in claim.executions.values()} == {"x1", "x2"}


def test_an_unfinished_journaled_event_is_refused_while_firestore_is_down(emulator, new_store):
    store = JournaledEventStore(new_store())
    store.claim("e", "a", 1000)
    emulator.stop()
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011
            store.release("e", "a", [Execution(route="smoke", test_id="t1")], False, 1001)
        with pytest.raises(StoreDown):
            store.claim("e", "b", 1002)
    finally:
        emulator.start()
