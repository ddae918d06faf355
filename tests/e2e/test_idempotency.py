"""Exactly one run per target, end to end: redeliveries, partial failures, concurrent deliveries
(one instance, and two instances sharing Firestore), outages of the stores and of Secret Manager.

Every count is what the fake Revyl really processed (`started`), not what the relay says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from relay.sandbox.fakes.revyl import EXECUTE_TEST_PATH, EXECUTE_WORKFLOW_PATH, Delay, Hang, Status
from tests.payloads import EAS_IOS_SIGNATURE, payload

APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TESTS = ["0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"]
WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
EVENT = "eas:8c1a2f3e-5b7d-4e19-9a0c-2d6f4b8e1a73:finished"
ROUTES = f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
routes:
  - name: ios-smoke
    when: {{source: eas, platform: ios}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: {TESTS}
    workflows: [{WORKFLOW}]
"""


@pytest.fixture
def relay(start_relay, revyl_yaml):
    return start_relay(revyl_yaml + ROUTES)


def firestore_yaml(lease_seconds: int = 540) -> str:
    collection = f"events-{uuid.uuid4().hex[:8]}"
    return (
        f"dedup: {{store: firestore, collection: {collection}, lease_seconds: {lease_seconds}}}\n"
    )


def post(relay, timeout: float = 30) -> requests.Response:
    headers = {"expo-signature": EAS_IOS_SIGNATURE, "Content-Type": "application/json"}
    return requests.post(
        f"{relay.url}/eas",
        data=payload("eas-build-finished-ios.json"),
        headers=headers,
        timeout=timeout,
    )


def runs(fake_revyl) -> Counter[str]:
    """Runs the fake Revyl really started, per target."""
    started = fake_revyl.started(EXECUTE_TEST_PATH) + fake_revyl.started(EXECUTE_WORKFLOW_PATH)
    return Counter(call.json.get("test_id") or call.json["workflow_id"] for call in started)


ONCE_EACH = Counter({TESTS[0]: 1, TESTS[1]: 1, WORKFLOW: 1})


def outcomes(body) -> dict[str, str]:
    return {e.get("test_id") or e["workflow_id"]: e["outcome"] for e in body["executions"]}


def test_a_redelivery_of_a_finished_event_starts_nothing_and_answers_the_original_ids(
    relay, fake_revyl
):
    first = post(relay)
    assert first.status_code == 200, first.text
    again = post(relay)
    assert again.status_code == 200
    assert again.json()["decision"] == "duplicate"
    assert again.json()["event"] == EVENT
    assert again.json()["execution_ids"] == first.json()["execution_ids"]
    assert len(first.json()["execution_ids"]) == 3
    assert runs(fake_revyl) == ONCE_EACH
    assert len(fake_revyl.calls_to("/builds/from-url")) == 1


def test_a_redelivery_after_a_partial_failure_starts_only_what_did_not_start(relay, fake_revyl):
    fake_revyl.fail(EXECUTE_WORKFLOW_PATH, Status(402, json_body={"detail": "Out of minutes"}))
    first = post(relay)
    assert first.status_code == 502
    body = first.json()
    assert body["decision"] == "partial"
    assert outcomes(body) == {TESTS[0]: "started", TESTS[1]: "started", WORKFLOW: "failed"}
    (error,) = body["errors"]
    assert error["revyl_status"] == 402
    assert "Out of minutes" in error["message"]

    again = post(relay)
    assert again.status_code == 200, again.text
    assert again.json()["decision"] == "triggered"
    assert set(again.json()["execution_ids"]) > set(body["execution_ids"])
    assert len(again.json()["execution_ids"]) == 3
    assert runs(fake_revyl) == ONCE_EACH
    assert len(fake_revyl.calls_to(EXECUTE_TEST_PATH)) == 2  # the tests were not asked again


def test_an_ambiguous_failure_is_unknown_and_retried_only_on_the_next_delivery(relay, fake_revyl):
    fake_revyl.fail(EXECUTE_WORKFLOW_PATH, Status(500))
    first = post(relay)
    assert first.status_code == 502
    assert outcomes(first.json())[WORKFLOW] == "unknown"
    assert len(fake_revyl.calls_to(EXECUTE_WORKFLOW_PATH)) == 1  # not retried inside the request
    again = post(relay)
    assert again.json()["decision"] == "triggered"
    assert runs(fake_revyl) == ONCE_EACH


def test_with_retry_unknown_false_a_maybe_started_target_is_never_started_again(
    start_relay, revyl_yaml, fake_revyl
):
    """The other reading of "exactly once": Revyl did start the workflow but never answered.
    With `retry_unknown: false` the redelivery does not start it a second time."""
    relay = start_relay(
        revyl_yaml.replace("retry_deadline: 3", "retry_deadline: 3, retry_unknown: false") + ROUTES
    )
    fake_revyl.fail(EXECUTE_WORKFLOW_PATH, Hang(5))  # processed, answered after the 2 s timeout
    first = post(relay)
    assert first.status_code == 502
    assert outcomes(first.json())[WORKFLOW] == "unknown"
    again = post(relay)
    assert again.status_code == 200
    assert again.json()["decision"] == "duplicate"
    assert outcomes(again.json())[WORKFLOW] == "unknown"
    assert runs(fake_revyl) == ONCE_EACH
    assert len(fake_revyl.calls_to(EXECUTE_WORKFLOW_PATH)) == 1


def test_a_webhook_whose_targets_all_failed_answers_502_and_a_later_delivery_runs_them(
    relay, fake_revyl
):
    fake_revyl.fail_always(EXECUTE_TEST_PATH, Status(402))
    fake_revyl.fail_always(EXECUTE_WORKFLOW_PATH, Status(402))
    first = post(relay)
    assert first.status_code == 502
    assert first.json()["decision"] == "failed"
    assert first.json()["execution_ids"] == []
    fake_revyl.clear_faults()
    assert post(relay).status_code == 200
    assert runs(fake_revyl) == ONCE_EACH


def deliver_at_once(urls: list[str], count: int) -> list[requests.Response]:
    barrier = threading.Barrier(count)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        relay = type("R", (), {"url": urls[n % len(urls)]})
        barrier.wait()
        answer = post(relay)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def assert_one_triggered(answers: list[requests.Response]) -> None:
    decisions = Counter(a.json()["decision"] for a in answers)
    assert decisions["triggered"] == 1, decisions
    assert decisions["triggered"] + decisions["in_progress"] + decisions["duplicate"] == 20
    for answer in answers:
        if answer.json()["decision"] == "in_progress":
            assert answer.status_code == 409
            assert int(answer.headers["Retry-After"]) > 0
            assert answer.json()["event"] == EVENT
        else:
            assert answer.status_code == 200


def test_twenty_concurrent_deliveries_start_each_target_once(relay, fake_revyl):
    fake_revyl.latency = 0.3  # the first delivery is still running when the others arrive
    answers = deliver_at_once([relay.url], 20)
    assert_one_triggered(answers)
    assert runs(fake_revyl) == ONCE_EACH


def test_twenty_concurrent_deliveries_to_two_instances_sharing_firestore(
    start_relay, revyl_yaml, fake_revyl, emulator
):
    config = revyl_yaml + ROUTES + firestore_yaml()
    instances = [start_relay(config, env=emulator.env()) for _ in range(2)]
    fake_revyl.latency = 0.3
    answers = deliver_at_once([i.url for i in instances], 20)
    assert_one_triggered(answers)
    assert runs(fake_revyl) == ONCE_EACH
    assert post(instances[1]).json()["decision"] == "duplicate"


def test_firestore_down_is_a_503_with_retry_after_and_starts_nothing(
    start_relay, revyl_yaml, fake_revyl, emulator
):
    relay = start_relay(revyl_yaml + ROUTES + firestore_yaml(), env=emulator.env())
    emulator.stop()
    try:
        answer = post(relay)
    finally:
        emulator.start()
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.json()["event"] == EVENT
    assert "nothing was started" in answer.json()["reason"]
    assert fake_revyl.calls_to("/execution/") == []


def test_secret_manager_down_is_a_503_and_starts_nothing(relay, fake_revyl, fake_secret_manager):
    # this instance has read no secret yet, so it has nothing cached to fall back on
    fake_secret_manager.down = True
    try:
        answer = post(relay)
    finally:
        fake_secret_manager.down = False  # the server is shared with later tests
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert fake_revyl.calls == []
    assert post(relay).status_code == 200
    assert runs(fake_revyl) == ONCE_EACH


def test_a_claim_left_by_an_instance_that_died_is_taken_over_after_the_lease(
    start_relay, revyl_yaml, fake_revyl, emulator
):
    quick = revyl_yaml.replace("request_timeout: 2", "connect_timeout: 0.5, request_timeout: 1")
    config = quick + ROUTES + firestore_yaml(lease_seconds=7)  # > 0.5 + 1 + 5 to record
    doomed = start_relay(config, env=emulator.env())
    fake_revyl.fail("/builds/from-url", Delay(30))  # it dies while Revyl fetches the build
    threading.Thread(target=lambda: _ignore_errors(post, doomed), daemon=True).start()
    deadline = time.monotonic() + 10
    while not fake_revyl.calls_to("/builds/from-url") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(doomed.pid, signal.SIGKILL)

    survivor = start_relay(config, env=emulator.env())
    assert post(survivor).status_code == 409  # the claim is younger than the lease
    time.sleep(7.1)
    answer = post(survivor)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"
    assert runs(fake_revyl) == ONCE_EACH


def _ignore_errors(fn, *args) -> None:
    with contextlib.suppress(requests.RequestException):
        fn(*args)
