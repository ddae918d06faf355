"""Verdicts followed in-process (`follow: local`), end to end: functions-framework serving the
relay, the fake Revyl moving runs through their lifecycle, a Standard Webhooks receiver that
verifies every message with the `standardwebhooks` package."""

from __future__ import annotations

import json
import time

import pytest
import requests

from relay.sandbox.fakes.webhook_receiver import WebhookReceiver
from tests.payloads import EAS_ANDROID_SIGNATURE, payload

APP = "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"
T1, T2 = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"
W1 = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENT = "eas:2e7d9b41-6c3a-4f08-b5d2-7a1e9c0f3b56:finished"


def config(receiver_url: str, *, give_up: int = 60, report: str = "[ci-hook]") -> str:
    return f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
verdicts: {{follow: local, poll_seconds: 1, give_up_seconds: {give_up}}}
reports:
  ci-hook: {{type: webhook, url: "{receiver_url}/verdicts", secret: {{env: HOOK_SECRET}}}}
routes:
  - name: android-e2e
    when: {{source: eas, platform: android}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: [{T1}, {T2}]
    workflows: [{W1}]
    report: {report}
"""


@pytest.fixture
def receiver():
    with WebhookReceiver(secret=HOOK_SECRET) as server:
        yield server


@pytest.fixture
def relay(start_relay, revyl_yaml, receiver):
    return start_relay(revyl_yaml + config(receiver.url), env={"HOOK_SECRET": HOOK_SECRET})


def post_build(relay):
    headers = {"expo-signature": EAS_ANDROID_SIGNATURE, "Content-Type": "application/json"}
    data = payload("eas-build-finished-android.json")
    return requests.post(f"{relay.url}/eas", data=data, headers=headers, timeout=20)


def failing_second_test(fake_revyl):
    fake_revyl.script_test(T1, ["queued", "running", ("completed", {"success": True})])
    fake_revyl.script_test(
        T2,
        ["queued", "running", ("failed", {"success": False, "error_message": "login-flow failed"})],
    )
    fake_revyl.script_workflow(W1, ["running", ("completed", {"total_tests": 3})])


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_a_failing_test_is_reported_started_then_finished_failed(relay, fake_revyl, receiver):
    failing_second_test(fake_revyl)
    answer = post_build(relay)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"
    started_ids = answer.json()["execution_ids"]

    messages = receiver.wait_for(2, timeout=30)
    assert [m.payload["type"] for m in messages] == ["check.started", "check.finished"]
    started, finished = (m.payload for m in messages)
    assert all(m.attempts == 1 for m in messages)  # each sent once
    assert started["data"]["event"] == EVENT
    assert started["data"]["route"] == "android-e2e"
    assert started["data"]["build"]["platform"] == "android"
    assert sorted(r["execution_id"] for r in started["data"]["runs"]) == sorted(started_ids)
    assert all(r["report_url"].startswith("https://app.revyl.ai/") for r in started["data"]["runs"])

    assert finished["data"]["verdict"] == "failed"
    runs = {r.get("test_id") or r.get("workflow_id"): r for r in finished["data"]["runs"]}
    assert runs[T1]["passed"] is True
    assert runs[T2]["passed"] is False
    assert runs[T2]["status"] == "failed"
    assert runs[T2]["error"] == "login-flow failed"
    assert runs[W1]["passed"] is True
    assert "verdict of android-e2e: failed" in relay.log_text()


def test_a_redelivered_build_reports_nothing_new(relay, fake_revyl, receiver):
    failing_second_test(fake_revyl)
    assert post_build(relay).json()["decision"] == "triggered"
    receiver.wait_for(2, timeout=30)
    again = post_build(relay)
    assert again.json()["decision"] == "duplicate"
    time.sleep(2.5)  # two poll intervals: anything it would schedule has had its chance
    assert len(receiver.attempts) == 2


def test_a_run_still_running_at_give_up_is_an_error(start_relay, revyl_yaml, fake_revyl, receiver):
    relay = start_relay(
        revyl_yaml + config(receiver.url, give_up=3), env={"HOOK_SECRET": HOOK_SECRET}
    )
    fake_revyl.script_test(T2, ["queued", "running"])  # never finishes
    assert post_build(relay).json()["decision"] == "triggered"
    messages = receiver.wait_for(2, timeout=30)
    finished = messages[-1].payload
    assert finished["type"] == "check.finished"
    assert finished["data"]["verdict"] == "error"
    runs = {r.get("test_id") or r.get("workflow_id"): r for r in finished["data"]["runs"]}
    assert runs[T2]["passed"] is None
    assert runs[T2]["status"] == "running"
    assert "no verdict by give_up_seconds" in runs[T2]["error"]


def test_a_receiver_answering_500_then_200_gets_the_message_once(relay, fake_revyl, receiver):
    receiver.script(500)
    assert post_build(relay).json()["decision"] == "triggered"
    messages = receiver.wait_for(2, timeout=40)
    started = messages[0]
    assert started.payload["type"] == "check.started"
    assert started.attempts == 2  # the 500, then the 200: the same webhook-id
    assert [m.accepted for m in messages] == [True, True]
    assert "failed; retrying" in relay.log_text()


def test_a_route_without_report_is_not_followed(start_relay, revyl_yaml, fake_revyl, receiver):
    relay = start_relay(
        revyl_yaml + config(receiver.url, report="[]"), env={"HOOK_SECRET": HOOK_SECRET}
    )
    answer = post_build(relay)
    assert answer.json()["decision"] == "triggered"
    time.sleep(2.5)
    ids = answer.json()["execution_ids"]
    assert all(fake_revyl.polls(i) == 0 for i in ids)  # no status call at all
    assert receiver.attempts == []


def test_the_task_endpoint_does_not_exist_with_follow_local(relay):
    forged = requests.post(
        f"{relay.url}/_relay/task",
        data=json.dumps({"kind": "verdict.poll", "payload": {"check": "x", "n": 1}}),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert forged.status_code == 404
    assert forged.json()["decision"] == "rejected"
