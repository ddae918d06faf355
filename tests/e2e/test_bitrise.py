"""Bitrise end to end: functions-framework serving main.py, signed Bitrise deliveries over HTTP,
the fake Bitrise API, the fake Revyl and the fake Secret Manager on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from relay.plugins import parse_config
from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.bitrise_api import TOKEN, FakeBitrise, artifact
from relay.sandbox.function_process import FunctionProcessError
from relay.sources import build_source
from tests.conftest import PROJECT, REVYL_TOKEN
from tests.payloads import payload

SECRET = "test-bitrise-secret"
SAMPLE = "bitrise-build-finished.json"
SAMPLE_SIGNATURE = "sha256=ecebde096df1f69063e9b613b328ad88644fd2fb353764c0a3d318fa26c076ee"
BUILD_SLUG = "7feee0a4-61f4-4eb6-a019-368cf9ac0d82"
APP_SLUG = "305da28f92b6b419"
COMMIT = "3b1f0c9e5d7a4f2b8c6e0a1d3f5b7c9e1a2b4c6d"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TESTS = ["0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"]
EXECUTE_TEST = "/execute_test_id_async"
ARTIFACTS = [
    artifact("aab1", "app-release.aab", "android-aab"),
    artifact(
        "apk1", "app-release-bitrise-signed.apk", "android-apk",
        package_name="com.acme.shopper", version_name="2.4.0", version_code="1342",
    ),
]  # fmt: skip
DETAILS = {
    "commit_hash": COMMIT,
    "branch": "feature/coupon-rounding",
    "pull_request_id": 412,
    "triggered_workflow": "android-preview",
    "build_number": 1342,
}


@pytest.fixture(scope="module")
def _bitrise() -> Iterator[FakeBitrise]:
    with FakeBitrise() as server:
        yield server


@pytest.fixture
def bitrise(_bitrise: FakeBitrise, fake_secret_manager) -> FakeBitrise:
    _bitrise.reset()
    _bitrise.add_build(APP_SLUG, BUILD_SLUG, ARTIFACTS, **DETAILS)
    fake_secret_manager.set("bitrise-webhook-secret", SECRET, project=PROJECT)
    fake_secret_manager.set("bitrise-token", TOKEN, project=PROJECT)
    return _bitrise


def config(bitrise: FakeBitrise, revyl_yaml: str, source: str | None = None) -> str:
    source = source or (
        "{secret: {secret: bitrise-webhook-secret},"
        f" api: {{url: {bitrise.url}, token: {{secret: bitrise-token}}, timeout: 1}}}}"
    )
    return f"""{revyl_yaml}
sources:
  bitrise: {source}
routes:
  - name: android-smoke
    when: {{source: bitrise, workflow: "android-*", platform: android}}
    build: {{ingest: {{app_id: {APP}}}, version_label: "{{version}} ({{build_number}})",
             asset: "*.apk"}}
    tests: {json.dumps(TESTS)}
"""


@pytest.fixture
def relay(start_relay, revyl_yaml, bitrise):
    return start_relay(config(bitrise, revyl_yaml))


def post(relay, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{relay.url}/bitrise", data=body, headers=headers, timeout=15)


def post_sample(relay, signature: str = SAMPLE_SIGNATURE) -> requests.Response:
    headers = {
        "Bitrise-Event-Type": "build/finished",
        "Bitrise-Hook-Signature": signature,
        "Content-Type": "application/json",
    }
    return post(relay, payload(SAMPLE), headers)


def signed(body: bytes, event_type: str = "build/finished") -> dict[str, str]:
    settings = parse_config("sources: {bitrise: {secret: {env: S}}}").sources["bitrise"]
    headers = build_source("bitrise", settings).sign(body, SECRET, 0, "x")
    return {**headers, "Bitrise-Event-Type": event_type}


def sample_with(**changes) -> bytes:
    return json.dumps({**json.loads(payload(SAMPLE)), **changes}).encode()


def test_signed_sample_ingests_a_fresh_link_and_starts_the_tests(
    relay, bitrise, fake_revyl, fake_secret_manager
):
    answer = post_sample(relay)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "triggered"
    assert body["event"] == f"bitrise:{BUILD_SLUG}:finished"
    assert body["build"]["commit"] == COMMIT
    assert body["build"]["platform"] == "android"
    assert body["build"]["app"] == "com.acme.shopper"
    assert body["build"]["build_url"] == f"https://app.bitrise.io/build/{BUILD_SLUG}"

    # the link is minted after the build and its artifacts were read, right before the ingest
    paths = [c.path for c in bitrise.calls]
    base = f"/v0.1/apps/{APP_SLUG}/builds/{BUILD_SLUG}"
    assert paths == [base, base + "/artifacts", base + "/artifacts/apk1"]
    (ingest,) = fake_revyl.calls_to("/builds/from-url")
    assert ingest.json["from_url"] == bitrise.minted[0]
    assert ingest.json["version"] == "2.4.0 (1342)"
    assert ingest.json["metadata"]["commit_sha"] == COMMIT
    assert "headers" not in ingest.json
    build_version_id = fake_revyl.builds(APP)[0]["id"]

    executes = fake_revyl.calls_to(EXECUTE_TEST)
    assert sorted(c.json["test_id"] for c in executes) == TESTS
    for call in executes:
        assert call.json["build_version_id"] == build_version_id
        assert call.headers["authorization"] == f"Bearer {REVYL_TOKEN}"
        assert call.headers["x-ci-system"] == "bitrise"
        assert call.headers["x-ci-commit-sha"] == COMMIT
        assert call.headers["x-ci-branch"] == "feature/coupon-rounding"
        assert call.headers["x-ci-pr-number"] == "412"
    assert len(body["execution_ids"]) == 2
    assert fake_secret_manager.access_count("bitrise-token") == 1
    assert TOKEN not in relay.log_text()


def test_a_redelivery_is_a_duplicate_and_starts_nothing_new(relay, bitrise, fake_revyl):
    first = post_sample(relay).json()
    again = post_sample(relay)
    assert again.status_code == 200
    assert again.json()["decision"] == "duplicate"
    assert again.json()["execution_ids"] == first["execution_ids"]
    assert len(fake_revyl.calls_to("/builds/from-url")) == 1
    assert len(fake_revyl.calls_to(EXECUTE_TEST)) == 2


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Bitrise-Hook-Signature": "sha256=" + "0" * 64}, "signature verification failed"),
        ({}, "missing Bitrise-Hook-Signature header (set a secret on the Bitrise webhook)"),
    ],
)
def test_bad_or_missing_signature_is_a_401(relay, bitrise, fake_revyl, headers, reason):
    answer = post(relay, payload(SAMPLE), {"Bitrise-Event-Type": "build/finished", **headers})
    assert answer.status_code == 401
    assert answer.json() == {"decision": "rejected", "reason": reason, **_empty_lists()}
    assert bitrise.calls == []
    assert fake_revyl.calls == []


def test_unfinished_failed_and_aborted_builds_are_ignored_with_the_reason(
    relay, bitrise, fake_revyl
):
    cases = [
        (sample_with(build_status=0), "build/triggered", "'build/triggered' is not build/finished"),
        (sample_with(build_status=2), "build/finished", "the build failed (build_status 2)"),
        (sample_with(build_status=3), "build/finished", "aborted with failure (build_status 3)"),
        (sample_with(build_status=4), "build/finished", "the build was aborted (build_status 4)"),
        (sample_with(build_status=0), "build/finished", "has not finished (build_status 0)"),
    ]
    for body, event_type, reason in cases:
        answer = post(relay, body, signed(body, event_type))
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "ignored"
        assert reason in answer.json()["reason"]
    assert bitrise.calls == []
    assert fake_revyl.calls == []


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        (
            json_reply(404, {"message": "Not Found"}),
            502,
            "the Bitrise API refused (404): Not Found",
        ),
        (json_reply(500, {"message": "oops"}), 503, "the Bitrise API answered 500"),
        (Reply(200, b"{}", delay=3), 503, "the Bitrise API did not answer in 1s"),
    ],
)
def test_enrichment_failures_get_a_json_answer_and_start_nothing(
    relay, bitrise, fake_revyl, fault, status, reason
):
    bitrise.fail("/v0.1", fault)
    answer = post_sample(relay)
    assert answer.status_code == status
    assert answer.json()["decision"] == "failed"
    assert answer.json()["reason"] == reason
    assert ("Retry-After" in answer.headers) == (status == 503)
    assert fake_revyl.calls == []


def test_a_token_bitrise_refuses_is_a_502(relay, bitrise, fake_revyl):
    bitrise.token = "another-token"
    answer = post_sample(relay)
    assert answer.status_code == 502
    assert answer.json()["reason"] == "the Bitrise API refused (401): Unauthorized"
    assert TOKEN not in answer.text
    assert fake_revyl.calls == []


def test_a_failed_link_releases_the_event_so_a_redelivery_succeeds(relay, bitrise, fake_revyl):
    bitrise.fail("/artifacts/apk1", json_reply(503, {"message": "busy"}), times=1)
    answer = post_sample(relay)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "the Bitrise API answered 503"
    assert fake_revyl.calls == []
    again = post_sample(relay)  # Bitrise does not retry: "Redeliver" in its webhook log
    assert again.status_code == 200, again.text
    assert again.json()["decision"] == "triggered"
    assert len(bitrise.minted) == 1


def test_a_missing_signing_secret_is_a_503_naming_it(
    relay, bitrise, fake_revyl, fake_secret_manager
):
    fake_secret_manager.delete("bitrise-webhook-secret", project=PROJECT)
    answer = post_sample(relay)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "secret 'bitrise-webhook-secret' could not be read (NotFound)"
    assert fake_revyl.calls == []


def test_a_static_bearer_token_without_the_api_uses_lookup(
    start_relay, revyl_yaml, bitrise, fake_revyl
):
    source = "{auth: bearer, header: X-Relay-Token, secret: {secret: bitrise-webhook-secret}}"
    routes = f"""
routes:
  - name: android-lookup
    when: {{source: bitrise, platform: android}}
    build: {{lookup: {{app_id: {APP}}}, version_label: "build {{build_number}}"}}
    tests: ["{TESTS[0]}"]
"""
    relay = start_relay(f"{revyl_yaml}\nsources:\n  bitrise: {source}\n{routes}")
    wanted = fake_revyl.add_build(APP, "build 1342")
    headers = {"Bitrise-Event-Type": "build/finished", "X-Relay-Token": SECRET}
    answer = post(relay, payload(SAMPLE), headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"
    (call,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert call.json["build_version_id"] == wanted
    assert bitrise.calls == []
    wrong = post(relay, payload(SAMPLE), {**headers, "X-Relay-Token": "guess"})
    assert wrong.status_code == 401


def test_without_a_secret_the_relay_refuses_to_start(start_relay, revyl_yaml, bitrise):
    with pytest.raises(FunctionProcessError) as refused:
        start_relay(config(bitrise, revyl_yaml, source="{api: {token: {secret: bitrise-token}}}"))
    assert "sources.bitrise.secret: set `secret: {secret: <Secret Manager name>}`" in str(
        refused.value
    )


def _empty_lists() -> dict[str, list]:
    return {"execution_ids": [], "executions": [], "errors": []}
