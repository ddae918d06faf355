"""The foundation, end to end: functions-framework serving main.py, signed webhooks over HTTP,
the fake Revyl and the fake Secret Manager on loopback."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.conftest import REVYL_TOKEN
from tests.payloads import (
    EAS_ERRORED_SIGNATURE,
    EAS_IOS_SIGNATURE,
    EAS_SECRET,
    GENERIC_SECRET,
    payload,
)

APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TESTS = [
    "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
    "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7",
    "2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8",
]
WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
ROUTES = f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
  ci: {{type: generic, secret: {{secret: ci-webhook-secret}}}}
routes:
  - name: ios-smoke
    when: {{source: eas, platform: ios, profile: preview}}
    build: {{ingest: {{app_id: {APP}}}, version_label: "{{version}} ({{build_number}})"}}
    tests: {json.dumps(TESTS)}
    workflows: [{WORKFLOW}]
  - name: ci-lookup
    when: {{source: ci}}
    build: {{lookup: {{app_id: {APP}}}, version_label: "{{version}}-{{build_number}}"}}
    tests: ["{TESTS[0]}"]
"""
EXECUTE_TEST = "/execute_test_id_async"
EXECUTE_WORKFLOW = "/execute_workflow_id_async"


@pytest.fixture
def relay(start_relay, revyl_yaml):
    return start_relay(revyl_yaml + ROUTES)


def post_eas(relay, name="eas-build-finished-ios.json", signature=EAS_IOS_SIGNATURE, **kwargs):
    headers = {"expo-signature": signature, "Content-Type": "application/json"}
    return requests.post(
        f"{relay.url}/eas", data=payload(name), headers=headers, timeout=10, **kwargs
    )


def test_signed_eas_build_ingests_once_and_starts_every_target(
    relay, fake_revyl, fake_secret_manager
):
    answer = post_eas(relay)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "triggered"
    assert body["event"] == "eas:8c1a2f3e-5b7d-4e19-9a0c-2d6f4b8e1a73:finished"

    ingests = fake_revyl.calls_to("/builds/from-url")
    assert len(ingests) == 1
    assert ingests[0].json["version"] == "2.4.0 (187)"
    assert (
        ingests[0].json["from_url"] == "https://expo.dev/artifacts/eas/pJ4xWq8tZcL2mNvB7rKd3e.ipa"
    )
    assert ingests[0].json["metadata"]["commit_sha"] == "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
    build_version_id = fake_revyl.builds(APP)[0]["id"]

    executes = fake_revyl.calls_to(EXECUTE_TEST)
    workflows = fake_revyl.calls_to(EXECUTE_WORKFLOW)
    assert sorted(c.json["test_id"] for c in executes) == sorted(TESTS)
    assert {c.json["build_version_id"] for c in executes} == {build_version_id}
    assert [c.json["workflow_id"] for c in workflows] == [WORKFLOW]
    assert workflows[0].json["build_config"] == {
        "ios_build": {"app_id": APP, "pinned_version": "2.4.0 (187)"}
    }
    for call in executes + workflows + ingests:
        assert call.headers["authorization"] == f"Bearer {REVYL_TOKEN}"
    for call in executes + workflows:
        assert call.headers["x-ci-commit-sha"] == "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
        assert call.headers["x-ci-system"] == "expo-eas"
        assert "x-ci-branch" not in call.headers  # unknown: left out, not sent empty
    assert fake_secret_manager.access_count("revyl-api-key") == 1

    assert len(body["execution_ids"]) == 4
    assert len(set(body["execution_ids"])) == 4
    assert all(fake_revyl.execution(execution_id) for execution_id in body["execution_ids"])
    assert body["build"]["build_version_id"] == build_version_id
    assert body["build"]["commit"] == "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
    workflow_entry = next(e for e in body["executions"] if e.get("workflow_id"))
    assert workflow_entry["report_url"].startswith("https://app.revyl.ai/workflows/report?taskId=")
    assert body["errors"] == []


def test_secrets_are_cached_across_webhooks(relay, fake_revyl, fake_secret_manager):
    for _ in range(3):
        assert post_eas(relay).status_code == 200
    assert fake_secret_manager.access_count("revyl-api-key") == 1
    assert fake_secret_manager.access_count("eas-webhook-secret") == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "decision"),
    [
        (
            "POST",
            "/eas",
            "eas-build-errored.json",
            {"expo-signature": EAS_ERRORED_SIGNATURE},
            200,
            "ignored",
        ),
        (
            "POST",
            "/eas",
            "eas-build-finished-ios.json",
            {"expo-signature": "sha1=" + "0" * 40},
            401,
            "rejected",
        ),
        ("POST", "/eas", "eas-build-finished-ios.json", {}, 401, "rejected"),
        (
            "POST",
            "/gitlab",
            "eas-build-finished-ios.json",
            {"expo-signature": EAS_IOS_SIGNATURE},
            404,
            "rejected",
        ),
        ("GET", "/eas", None, {}, 405, "rejected"),
        (
            "PUT",
            "/eas",
            "eas-build-finished-ios.json",
            {"expo-signature": EAS_IOS_SIGNATURE},
            405,
            "rejected",
        ),
    ],
)
def test_refusals_get_their_documented_answer_and_start_nothing(
    relay, fake_revyl, method, path, body, headers, status, decision
):
    data = payload(body) if body else None
    answer = requests.request(method, relay.url + path, data=data, headers=headers, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["decision"] == decision
    assert answer.json()["reason"]
    assert fake_revyl.calls == []


def test_errored_build_says_why(relay, fake_revyl):
    answer = post_eas(relay, "eas-build-errored.json", EAS_ERRORED_SIGNATURE)
    assert answer.json()["reason"] == "the build errored"


def test_non_json_body_is_a_400_with_what_is_wrong(relay, fake_revyl):
    from relay.signatures import hmac_hex

    body = b"build finished!"
    signature = "sha1=" + hmac_hex(EAS_SECRET, body, __import__("hashlib").sha1)
    answer = requests.post(
        f"{relay.url}/eas", data=body, headers={"expo-signature": signature}, timeout=10
    )
    assert answer.status_code == 400
    assert answer.json()["decision"] == "rejected"
    assert "not valid JSON" in answer.json()["reason"]
    assert fake_revyl.calls == []


def test_body_over_one_mebibyte_is_413(relay, fake_revyl):
    answer = requests.post(f"{relay.url}/eas", data=b"{" + b" " * (1 << 20) + b"}", timeout=10)
    assert answer.status_code == 413
    assert answer.json()["decision"] == "rejected"


def test_generic_lookup_finds_the_exact_label(relay, fake_revyl):
    fake_revyl.add_build(APP, "2.4.0-1870")
    wanted = fake_revyl.add_build(APP, "2.4.0-187")
    body = json.dumps(
        {
            "platform": "android",
            "version": "2.4.0",
            "build_number": "187",
            "commit": "abc",
            "branch": "main",
            "pr_number": 9,
        }
    ).encode()
    from relay.signatures import standard_webhook_signature

    timestamp = str(int(time.time()))
    headers = {
        "webhook-id": "msg_lookup_1",
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1,"
        + standard_webhook_signature(GENERIC_SECRET, "msg_lookup_1", timestamp, body),
    }
    answer = requests.post(f"{relay.url}/ci", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"] == "ci:msg_lookup_1"
    (call,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert call.json["build_version_id"] == wanted
    assert call.headers["x-ci-pr-number"] == "9"
    assert call.headers["x-ci-branch"] == "main"


def test_healthz_touches_nothing(relay, fake_revyl, fake_secret_manager):
    before = fake_secret_manager.access_count()
    answer = requests.get(f"{relay.url}/healthz", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert fake_revyl.calls == []
    assert fake_secret_manager.access_count() == before


def test_dry_run_without_a_token(start_relay, fake_revyl):
    config = f"revyl: {{api_url: {fake_revyl.url}, token: {{env: REVYL_API_KEY}}}}\n" + ROUTES
    relay = start_relay(config, env={"REVYL_API_KEY": ""})
    answer = post_eas(relay)
    assert answer.status_code == 200
    body = answer.json()
    assert body["decision"] == "dry_run"
    assert [call["path"] for call in body["plan"][0]["calls"]][:1] == [
        f"/api/v1/apps/{APP}/builds/from-url"
    ]
    assert len(body["plan"][0]["calls"]) == 5
    assert fake_revyl.calls == []
    assert "dry-run" in relay.log_text()
