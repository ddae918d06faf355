"""The webhook target's messages, signatures and answers (pure), checked with the
`standardwebhooks` package, an implementation independent of the relay's own signer."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from relay.models import Execution
from relay.reports.base import Refused
from relay.reports.webhook import message, message_id, read_answer, signing_secret
from relay.signatures import sign_standard_webhook
from relay.tasks import RetryLater
from relay.verdicts.check import new_check

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_780_000_000.0


def check():
    executions = [
        Execution(route="r", test_id="t1", execution_id="x1", report_url="https://a/1"),
        Execution(route="r", workflow_id="w1", execution_id="x2", report_url="https://a/2"),
        Execution(route="r", test_id="t3", outcome="failed", error="402"),
    ]
    return new_check(
        event_key="eas:b1:finished",
        route="r",
        build={"version": "2.4.0"},
        executions=executions,
        report_to=["hook"],
        now=NOW,
        give_up_seconds=60,
    )


def test_the_started_message():
    body = message(check(), "started", NOW)
    assert body["type"] == "check.started"
    assert body["timestamp"] == "2026-05-28T20:26:40Z"
    assert body["data"]["event"] == "eas:b1:finished"
    assert "verdict" not in body["data"]
    assert body["data"]["runs"][0] == {
        "test_id": "t1",
        "execution_id": "x1",
        "report_url": "https://a/1",
    }
    assert body["data"]["runs"][1]["workflow_id"] == "w1"
    never = body["data"]["runs"][2]
    assert (never["execution_id"], never["status"], never["passed"]) == (None, "not_started", None)


def test_the_finished_message():
    settled = check().model_copy(update={"verdict": "error"})
    body = message(settled, "finished", NOW)
    assert body["type"] == "check.finished"
    assert body["data"]["verdict"] == "error"
    assert body["data"]["runs"][0]["passed"] is None
    assert body["data"]["runs"][2]["error"] == "402"


def test_messages_verify_with_an_independent_implementation():
    now = time.time()  # the verifier checks the timestamp against its own clock
    body = json.dumps(message(check(), "started", now)).encode()
    headers = sign_standard_webhook(body, SECRET, now, message_id(check(), "started"))
    assert Webhook(SECRET).verify(body, headers)["type"] == "check.started"


def test_the_message_id_is_stable_per_check_and_phase():
    assert message_id(check(), "started") == message_id(check(), "started")
    assert message_id(check(), "started") != message_id(check(), "finished")


@pytest.mark.parametrize("secret", ["", "plain-secret-value-0123", "whsec_not base64!"])
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused(secret):
    with pytest.raises(Refused, match="whsec_"):
        signing_secret(secret, "reports.hook.secret")


@pytest.mark.parametrize(
    ("status", "headers", "outcome"),
    [
        (200, {}, "sent"),
        (204, {}, "sent"),
        (500, {}, "retry"),
        (503, {"Retry-After": "7"}, "retry 7"),
        (429, {"Retry-After": "2"}, "retry 2"),
        (410, {}, "refused"),
        (400, {}, "refused"),
        (401, {}, "refused"),
    ],
)
def test_the_receivers_answer(status, headers, outcome):
    try:
        read_answer(status, headers, NOW)
        got = "sent"
    except RetryLater as retry:
        got = "retry" + (f" {retry.after:g}" if retry.after is not None else "")
    except Refused:
        got = "refused"
    assert got == outcome
