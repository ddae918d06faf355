"""The check store contract: every store opens, observes and settles a check the same way, and
lets each report be claimed by one delivery at a time. Firestore runs against the emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from relay.config import DedupSettings
from relay.models import Execution
from relay.stores.checks import REPORT_LEASE, CheckStore, MemoryCheckStore
from relay.stores.firestore import FirestoreEventStore
from relay.stores.firestore_checks import FirestoreCheckStore
from relay.verdicts.check import Run, new_check
from tests.support.threads import at_once

NewInstance = Callable[[], CheckStore]


def _memory(request: pytest.FixtureRequest) -> NewInstance:
    store = MemoryCheckStore()
    return lambda: store


def _firestore(request: pytest.FixtureRequest) -> NewInstance:
    emulator = request.getfixturevalue("emulator")
    request.getfixturevalue("monkeypatch").setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    settings = DedupSettings(store="firestore", collection=f"c-{uuid.uuid4().hex[:8]}")

    def instance() -> CheckStore:
        events = FirestoreEventStore(settings, "demo", retry_budget=1.0)
        return FirestoreCheckStore(settings, events.client, retry_budget=1.0)

    return instance


STORES = {"memory": _memory, "firestore": _firestore}


@pytest.fixture(params=list(STORES))
def new_instance(request: pytest.FixtureRequest) -> NewInstance:
    return STORES[request.param](request)


def execution(test_id: str, started: bool = True) -> Execution:
    if started:
        return Execution(route="r", test_id=test_id, execution_id=f"x-{test_id}")
    return Execution(route="r", test_id=test_id, outcome="failed", error="402")


def check(*executions: Execution, event: str = "eas:b/1:finished"):
    return new_check(
        event_key=event,
        route="r/odd `route`",
        build={"version": "2.4.0", "commit": None},
        executions=executions or [execution("t1"), execution("t2")],
        report_to=["hook", "team"],
        now=1000.0,
        give_up_seconds=60,
        origin={"channel": "C1"},
    )


def test_a_check_is_opened_once_and_read_back_whole(new_instance):
    opened, new = new_instance().open(check())
    assert new
    again, new_again = new_instance().open(check())
    assert not new_again
    stored = new_instance().get(opened.id)
    assert stored == opened == again
    assert new_instance().get("0" * 40) is None


def test_a_redelivery_that_started_more_adds_its_runs(new_instance):
    first, _ = new_instance().open(check(execution("t1"), execution("t2", started=False)))
    merged, _ = new_instance().open(check(execution("t1"), execution("t2")))
    assert merged.runs["r/test/t2"].execution_id == "x-t2"
    assert new_instance().get(first.id).runs["r/test/t2"].execution_id == "x-t2"


def test_polls_are_observed_and_the_first_verdict_wins(new_instance):
    opened, _ = new_instance().open(check())
    running = opened.runs["r/test/t1"].model_copy(update={"status": "running"})
    new_instance().observe(opened.id, {"r/test/t1": running}, 1)
    seen = new_instance().get(opened.id)
    assert (seen.runs["r/test/t1"].status, seen.polls, seen.verdict) == ("running", 1, None)
    failed = running.model_copy(update={"status": "failed", "outcome": "failed"})
    first = new_instance().settle(opened.id, "failed", {"r/test/t1": failed}, 1010.0)
    second = new_instance().settle(opened.id, "passed", {}, 1011.0)
    assert first.verdict == second.verdict == "failed"
    # a slow poll observing after the verdict changes nothing the reports read
    new_instance().observe(opened.id, {"r/test/t1": running}, 2)
    settled = new_instance().get(opened.id)
    assert (settled.verdict, settled.finished_at) == ("failed", 1010.0)
    assert settled.runs["r/test/t1"].outcome == "failed"


def test_a_settled_check_takes_no_new_runs(new_instance):
    opened, _ = new_instance().open(check(execution("t1"), execution("t2", started=False)))
    new_instance().settle(opened.id, "error", {}, 1010.0)
    again, new = new_instance().open(check(execution("t1"), execution("t2")))
    assert not new
    assert again.runs["r/test/t2"].execution_id is None


def test_a_report_is_claimed_by_one_delivery_and_done_once_sent(new_instance):
    opened, _ = new_instance().open(check())
    assert new_instance().report(opened.id, "hook:started") is None
    assert new_instance().claim_report(opened.id, "hook:started", "a", 1000).kind == "send"
    assert new_instance().claim_report(opened.id, "hook:started", "b", 1001).kind == "busy"
    assert new_instance().report(opened.id, "hook:started").kind == "busy"
    new_instance().end_report(opened.id, "hook:started", "a", "sent", {"ts": "1.2"}, 1002)
    done = new_instance().claim_report(opened.id, "hook:started", "c", 1003)
    assert (done.kind, done.state, dict(done.data)) == ("done", "sent", {"ts": "1.2"})
    assert new_instance().claim_report(opened.id, "team:started", "d", 1003).kind == "send"


def test_a_released_report_is_claimed_again_and_a_dead_holders_claim_expires(new_instance):
    opened, _ = new_instance().open(check())
    new_instance().claim_report(opened.id, "hook:finished", "a", 1000)
    new_instance().release_report(opened.id, "hook:finished", "a")
    assert new_instance().claim_report(opened.id, "hook:finished", "b", 1001).kind == "send"
    later = 1001 + REPORT_LEASE + 1
    assert new_instance().claim_report(opened.id, "hook:finished", "c", later).kind == "send"


def test_ten_deliveries_claiming_at_once_give_one_sender(new_instance):
    opened, _ = new_instance().open(check())
    stores = [new_instance() for _ in range(10)]
    kinds = at_once(
        10, lambda n: stores[n].claim_report(opened.id, "hook:started", f"c{n}", 1000).kind
    )
    assert sorted(kinds) == ["busy"] * 9 + ["send"]


def test_the_run_model_round_trips_every_field(new_instance):
    run = Run(
        test_id="t1",
        execution_id="x",
        report_url="https://app.revyl.ai/tests/report?taskId=x",
        status="failed",
        outcome="failed",
        error="ünïcode `error`",
    )
    opened, _ = new_instance().open(check())
    new_instance().settle(opened.id, "failed", {"r/test/t1": run}, 1010.0)
    assert new_instance().get(opened.id).runs["r/test/t1"] == run
