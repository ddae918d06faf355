"""App Store Connect end to end: functions-framework serving main.py, signed ASC deliveries over
HTTP, the fake App Store Connect API (checking real ES256 tokens), fake Revyl and Secret Manager."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.asc_api import ISSUER_ID, KEY_ID, FakeAppStoreConnect, new_key
from relay.signatures import hmac_hex
from tests.conftest import PROJECT
from tests.payloads import payload

SECRET = "test-asc-secret"
SAMPLE = "appstoreconnect-build-upload.json"
SAMPLE_SIGNATURE = "hmacsha256=844f38422f6604375bb64afae4f5d256746a88f565bb3349bf7680358c748309"
EVENT_ID = "1239d9f7-12b5-4456-8859-12b04e6e8445"
UPLOAD_ID = "e59c1dca-4f3b-4d2a-9c8e-7b6a5f4e3d21"
APP = "6f1c2a5e-0000-4000-8000-0000000000a5"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
EXECUTE_TEST = "/execute_test_id_async"
EXECUTE_WORKFLOW = "/execute_workflow_id_async"


P8, PUBLIC = new_key()


@pytest.fixture(scope="module")
def _asc() -> Iterator[FakeAppStoreConnect]:
    with FakeAppStoreConnect(PUBLIC) as server:
        yield server


@pytest.fixture
def asc(_asc: FakeAppStoreConnect, fake_secret_manager) -> FakeAppStoreConnect:
    _asc.reset()
    _asc.public_key_pem = PUBLIC
    fake_secret_manager.set("asc-webhook-secret", SECRET, project=PROJECT)
    fake_secret_manager.set("asc-issuer-id", ISSUER_ID, project=PROJECT)
    fake_secret_manager.set("asc-p8", P8, project=PROJECT)
    return _asc


def config(asc: FakeAppStoreConnect, revyl_yaml: str, api: bool = True) -> str:
    api_yaml = (
        f", api: {{url: {asc.url}, issuer_id: {{secret: asc-issuer-id}}, key_id: {KEY_ID},"
        " private_key: {secret: asc-p8}, timeout: 1}"
        if api
        else ""
    )
    return f"""{revyl_yaml}
sources:
  app-store-connect: {{secret: {{secret: asc-webhook-secret}}{api_yaml}}}
routes:
  - name: testflight
    when: {{source: app-store-connect, platform: ios, app: com.acme.shopper}}
    build: {{lookup: {{app_id: {APP}}}, version_label: "{{version}} ({{build_number}})"}}
    tests: ["{TEST}"]
    workflows: ["{WORKFLOW}"]
"""


@pytest.fixture
def relay(start_relay, revyl_yaml, asc):
    return start_relay(config(asc, revyl_yaml))


def post(relay, body: bytes, signature: str | None = None) -> requests.Response:
    signature = signature or "hmacsha256=" + hmac_hex(SECRET, body, __import__("hashlib").sha256)
    headers = {"x-apple-signature": signature, "Content-Type": "application/json"}
    return requests.post(f"{relay.url}/app-store-connect", data=body, headers=headers, timeout=15)


def post_sample(relay) -> requests.Response:
    return post(relay, payload(SAMPLE), SAMPLE_SIGNATURE)


def sample_with(**attributes) -> bytes:
    data = json.loads(payload(SAMPLE))
    data["data"]["attributes"] = {**data["data"]["attributes"], **attributes}
    return json.dumps(data).encode()


def seed(asc: FakeAppStoreConnect, **kwargs) -> None:
    fields = {"version": "2.4.0", "build_number": "187", "bundle_id": "com.acme.shopper", **kwargs}
    asc.add_upload(UPLOAD_ID, **fields)


def test_signed_sample_looks_up_the_version_apple_reports(relay, asc, fake_revyl):
    seed(asc)
    fake_revyl.add_build(APP, "2.4.0 (1870)")
    wanted = fake_revyl.add_build(APP, "2.4.0 (187)")
    answer = post_sample(relay)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "triggered"
    assert body["event"] == f"app-store-connect:{EVENT_ID}"
    assert {k: body["build"][k] for k in ("platform", "app", "version", "build_number")} == {
        "platform": "ios",
        "app": "com.acme.shopper",
        "version": "2.4.0",
        "build_number": "187",
    }
    (test,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert test.json["build_version_id"] == wanted
    assert test.headers["x-ci-system"] == "app-store-connect"
    (workflow,) = fake_revyl.calls_to(EXECUTE_WORKFLOW)
    assert workflow.json["build_config"] == {
        "ios_build": {"app_id": APP, "pinned_version": "2.4.0 (187)"}
    }
    assert fake_revyl.calls_to("/builds/from-url") == []  # Apple gives out no binary
    assert len(asc.tokens) == 1
    assert "BEGIN PRIVATE KEY" not in relay.log_text()


def test_when_apple_does_not_know_the_upload_the_id_is_read_as_a_build(relay, asc, fake_revyl):
    seed(asc, upload_known=False)
    fake_revyl.add_build(APP, "2.4.0 (187)")
    answer = post_sample(relay)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"
    assert [c.path for c in asc.calls] == [
        f"/v1/buildUploads/{UPLOAD_ID}",
        f"/v1/builds/{UPLOAD_ID}",
    ]


def test_pings_unfinished_and_failed_uploads_are_ignored(relay, asc, fake_revyl):
    ping = json.dumps({"data": {"type": "webhookPingCreated", "id": "p1", "attributes": {}}})
    cases = [
        (ping.encode(), "App Store Connect ping"),
        (sample_with(newState="PROCESSING"), "the build upload is still processing"),
        (sample_with(newState="FAILED"), "App Store Connect could not process the build upload"),
    ]
    for body, reason in cases:
        answer = post(relay, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "ignored"
        assert answer.json()["reason"].startswith(reason)
    assert asc.calls == []
    assert fake_revyl.calls == []


def test_a_macos_upload_is_ignored(relay, asc, fake_revyl):
    seed(asc, platform="MAC_OS")
    answer = post_sample(relay)
    assert answer.status_code == 200
    assert answer.json()["reason"] == "the build is for MAC_OS, not iOS"
    assert fake_revyl.calls == []


@pytest.mark.parametrize(
    "signature", [None, "hmacsha256=" + "0" * 64, SAMPLE_SIGNATURE.replace("hmacsha256=", "v0=")]
)
def test_bad_or_missing_signature_is_a_401(relay, asc, fake_revyl, signature):
    headers = {"x-apple-signature": signature} if signature else {}
    answer = requests.post(
        f"{relay.url}/app-store-connect", data=payload(SAMPLE), headers=headers, timeout=10
    )
    assert answer.status_code == 401
    assert answer.json()["decision"] == "rejected"
    assert asc.calls == []
    assert fake_revyl.calls == []


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        (
            None,
            502,
            f"the App Store Connect API knows no build upload or build '{UPLOAD_ID}' (404)",
        ),
        (
            json_reply(500, {"errors": [{"status": "500"}]}),
            503,
            "the App Store Connect API answered 500",
        ),
        (Reply(200, b"{}", delay=3), 503, "the App Store Connect API did not answer in 1s"),
    ],
)
def test_api_failures_get_a_json_answer_and_start_nothing(
    relay, asc, fake_revyl, fault, status, reason
):
    if fault is not None:
        seed(asc)
        asc.fail("/v1/", fault)
    answer = post_sample(relay)
    assert answer.status_code == status
    assert answer.json() == {
        "decision": "failed",
        "reason": reason,
        "execution_ids": [],
        "executions": [],
        "errors": [],
    }
    assert ("Retry-After" in answer.headers) == (status == 503)
    assert fake_revyl.calls == []


def test_a_key_apple_refuses_is_a_502(relay, asc, fake_revyl):
    seed(asc)
    asc.public_key_pem = new_key()[1]  # Apple holds another key under this key id
    answer = post_sample(relay)
    assert answer.status_code == 502
    assert answer.json()["reason"].startswith(
        "the App Store Connect API refused (401): Provide a properly configured and signed"
    )
    assert fake_revyl.calls == []


def test_a_private_key_that_is_not_a_p8_is_a_503_that_names_the_setting(
    relay, asc, fake_revyl, fake_secret_manager
):
    fake_secret_manager.set(
        "asc-p8", "MIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg", project=PROJECT
    )
    seed(asc)
    answer = post_sample(relay)
    assert answer.status_code == 503  # an operator fixes the key; the redelivery then works
    assert answer.headers["Retry-After"] == "30"
    assert answer.json()["reason"].startswith(
        "cannot sign an App Store Connect token: sources.app-store-connect.api.private_key "
        "(secret asc-p8) is not a .p8 EC private key"
    )
    assert "MIGTAgEA" not in answer.text
    assert asc.calls == []


def test_no_revyl_build_with_that_label_is_a_502_per_target(relay, asc, fake_revyl):
    seed(asc)
    answer = post_sample(relay)
    assert answer.status_code == 502
    body = answer.json()
    assert body["decision"] == "failed"
    assert body["errors"][0]["message"] == f"no build labelled '2.4.0 (187)' in Revyl app {APP}"
    assert fake_revyl.calls_to(EXECUTE_TEST) == []


def test_without_the_api_an_attached_route_still_runs(start_relay, revyl_yaml, asc, fake_revyl):
    routes = f"""{revyl_yaml}
sources:
  asc: {{type: app-store-connect, secret: {{secret: asc-webhook-secret}}}}
routes:
  - name: testflight-attached
    when: {{source: asc}}
    tests: ["{TEST}"]
"""
    relay = start_relay(routes)
    answer = requests.post(
        f"{relay.url}/asc",
        data=payload(SAMPLE),
        headers={"x-apple-signature": SAMPLE_SIGNATURE},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"] == f"asc:{EVENT_ID}"
    (call,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert "build_version_id" not in call.json or call.json["build_version_id"] is None
    assert asc.calls == []
