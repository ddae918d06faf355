"""Logs are one JSON object per line with what an operator needs, and no secret ever shows.

The relay runs with its Revyl token and both signing secrets in (fake) Secret Manager; the test
drives it through the happy path and every error path it can reach, then searches every log
line and every response (body and headers) for each secret value and each expected signature.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import requests

from relay.sandbox.fakes.revyl import EXECUTE_TEST_PATH, EXECUTE_WORKFLOW_PATH, Hang, Reset, Status
from relay.signatures import hmac_hex, standard_webhook_signature
from tests.conftest import REVYL_TOKEN
from tests.payloads import EAS_IOS_SIGNATURE, EAS_SECRET, GENERIC_SECRET, payload

APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
TRACE_ID = "105445aa7843bc8bf206b12000100000"
CONFIG = f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
  ci: {{type: generic, secret: {{secret: ci-webhook-secret}}}}
routes:
  - name: ios-smoke
    when: {{platform: ios}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: [{TEST}]
    workflows: [{WORKFLOW}]
"""
IOS = payload("eas-build-finished-ios.json")


@pytest.fixture
def relay(start_relay, revyl_yaml):
    return start_relay(revyl_yaml + CONFIG)


class Exchanges:
    """Every response seen, as text (status line, headers and body)."""

    def __init__(self, relay) -> None:
        self.relay = relay
        self.seen: list[str] = []

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        headers = {"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1", **headers}
        answer = requests.post(self.relay.url + path, data=body, headers=headers, timeout=30)
        self.seen.append(f"{answer.status_code} {dict(answer.headers)} {answer.text}")
        return answer


def eas_body(build_id: str) -> bytes:
    data = json.loads(IOS)
    data["id"] = build_id
    return json.dumps(data).encode()


def eas_headers(body: bytes) -> dict[str, str]:
    return {"expo-signature": "sha1=" + hmac_hex(EAS_SECRET, body, hashlib.sha1)}


def generic_headers(body: bytes, msg_id: str, secret: str = GENERIC_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = standard_webhook_signature(secret, msg_id, timestamp, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }


def log_entries(relay) -> list[dict]:
    entries = []
    for line in relay.log_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))  # every structured line is one JSON object
    return entries


def wait_for_log(relay, count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = [e for e in log_entries(relay) if "status" in e]
        if len(entries) >= count:
            return entries
        time.sleep(0.05)
    return [e for e in log_entries(relay) if "status" in e]


def test_no_secret_or_expected_signature_appears_in_logs_or_responses(
    relay, fake_revyl, fake_secret_manager
):
    ex = Exchanges(relay)
    expected_signatures = []

    # the happy path
    assert ex.post("/eas", IOS, {"expo-signature": EAS_IOS_SIGNATURE}).status_code == 200
    # bad signatures: the expected values must not leak
    for n, wrong in enumerate(["sha1=" + "0" * 40, "sha1=zz", "ünïcode", ""]):
        body = eas_body(f"bad-{n}")
        expected_signatures.append(eas_headers(body)["expo-signature"].removeprefix("sha1="))
        headers = {"expo-signature": wrong} if wrong else {}
        encoded = {k: v.encode("latin-1") for k, v in headers.items()}
        assert ex.post("/eas", body, encoded).status_code == 401  # type: ignore[arg-type]
    generic = json.dumps({"status": "success", "platform": "ios", "version": "1"}).encode()
    good = generic_headers(generic, "msg_1")
    expected_signatures.append(good["webhook-signature"].removeprefix("v1,"))
    forged = {**good, "webhook-signature": "v1," + "A" * 44}
    assert ex.post("/ci", generic, forged).status_code == 401
    assert ex.post("/ci", generic, {**good, "webhook-timestamp": "9" * 5000}).status_code == 401

    # Revyl refusing, failing, resetting, hanging, and echoing the token back in its error
    fake_revyl.fail(EXECUTE_TEST_PATH, Status(401, json_body={"detail": "Invalid API key"}))
    fake_revyl.fail(EXECUTE_WORKFLOW_PATH, Status(500))
    assert ex.post("/eas", eas_body("b-1"), eas_headers(eas_body("b-1"))).status_code == 502
    fake_revyl.fail(EXECUTE_TEST_PATH, Reset())
    fake_revyl.fail(EXECUTE_WORKFLOW_PATH, Hang(5))
    assert ex.post("/eas", eas_body("b-2"), eas_headers(eas_body("b-2"))).status_code == 502
    echo = {"detail": f"token {REVYL_TOKEN} is not valid for secret {EAS_SECRET}"}
    fake_revyl.fail(EXECUTE_TEST_PATH, Status(422, json_body=echo))
    answer = ex.post("/eas", eas_body("b-3"), eas_headers(eas_body("b-3")))
    assert answer.status_code == 502
    assert "is not valid" in answer.json()["errors"][0]["message"]  # Revyl's words, masked

    # refusals before any work
    assert ex.post("/eas", b"{" + b" " * (1 << 20) + b"}", {}).status_code == 413
    assert ex.post("/nowhere", IOS, {}).status_code == 404
    assert requests.get(relay.url + "/eas", timeout=10).status_code == 405

    log = relay.log_text()
    everything = log + "\n".join(ex.seen)
    for secret in (REVYL_TOKEN, EAS_SECRET, GENERIC_SECRET, GENERIC_SECRET.removeprefix("whsec_")):
        assert secret not in everything
    for signature in expected_signatures:
        assert signature not in everything


def test_secret_manager_down_leaks_nothing_either(relay, fake_secret_manager):
    fake_secret_manager.down = True
    try:
        answer = requests.post(
            relay.url + "/eas", data=IOS, headers={"expo-signature": EAS_IOS_SIGNATURE}, timeout=30
        )
    finally:
        fake_secret_manager.down = False  # the server is shared with later tests
    assert answer.status_code == 503
    text = relay.log_text() + answer.text
    for secret in (REVYL_TOKEN, EAS_SECRET, GENERIC_SECRET):
        assert secret not in text


def test_an_empty_signing_secret_signs_nothing(relay, fake_revyl, fake_secret_manager):
    """A new version of the signing secret that is empty (or whitespace) is refused like an
    unreadable one: a body signed with the empty key starts nothing, and the log says why."""
    fake_secret_manager.set("eas-webhook-secret", " \n", project="demo")
    body = eas_body("empty-secret-build")
    for key in ("", " "):
        signature = "sha1=" + hmac_hex(key, body, hashlib.sha1)
        answer = requests.post(
            relay.url + "/eas", data=body, headers={"expo-signature": signature}, timeout=30
        )
        assert answer.status_code == 503
        assert answer.json()["reason"] == "secret 'eas-webhook-secret' is empty"
    assert fake_revyl.calls == []
    refused = [e for e in log_entries(relay) if e.get("secret") == "eas-webhook-secret"]
    assert refused
    assert {e["severity"] for e in refused} == {"ERROR"}


def test_each_request_is_one_json_line_with_what_an_operator_needs(relay, fake_revyl):
    ex = Exchanges(relay)
    first = ex.post("/eas", IOS, {"expo-signature": EAS_IOS_SIGNATURE})
    again = ex.post("/eas", IOS, {"expo-signature": EAS_IOS_SIGNATURE})
    refused = ex.post("/eas", IOS, {"expo-signature": "sha1=" + "0" * 40})
    entries = wait_for_log(relay, 3)
    triggered, duplicate, rejected = entries[-3:]

    assert triggered["severity"] == "INFO"
    assert triggered["message"] == "eas: triggered"
    assert triggered["event"] == first.json()["event"]
    assert triggered["source"] == "eas"
    assert triggered["decision"] == "triggered"
    assert triggered["status"] == 200
    assert triggered["targets"] == [f"ios-smoke/test/{TEST}", f"ios-smoke/workflow/{WORKFLOW}"]
    assert triggered["execution_ids"] == first.json()["execution_ids"]
    assert triggered["latency_ms"] >= 0
    assert triggered["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE_ID}"

    assert duplicate["decision"] == "duplicate"
    assert duplicate["execution_ids"] == again.json()["execution_ids"]
    assert rejected["decision"] == "rejected"
    assert rejected["status"] == refused.status_code == 401

    for entry in log_entries(relay):
        assert {"severity", "message", "time"} <= set(entry)


def test_healthz_answers_without_touching_secrets_or_revyl(relay, fake_revyl, fake_secret_manager):
    before = len(fake_secret_manager.calls)
    answer = requests.get(relay.url + "/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert fake_revyl.calls == []
    assert len(fake_secret_manager.calls) == before
