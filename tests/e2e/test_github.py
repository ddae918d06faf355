"""GitHub end to end: functions-framework serving main.py, signed GitHub deliveries over HTTP,
fake Revyl, fake Secret Manager and a fake GitHub API on loopback."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

import pytest
import requests

from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.github_api import FakeGitHubApi
from relay.sandbox.function_process import FunctionProcessError
from relay.signatures import hmac_hex
from tests.conftest import PROJECT, REVYL_TOKEN, relay_process, revyl_block
from tests.payloads import payload

SECRET = "test-github-secret"
GITHUB_TOKEN = "ghp_e2e_7Hq2xYk0"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TESTS = [
    "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
    "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7",
    "2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8",
]
SHA = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
TAG_SHA = "4e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5"
RUN_ID = "12034987651"
SAMPLES = {  # webhook-sources.md §10: the shared samples and their known-good signatures
    "release": (
        "github-release-published.json",
        "sha256=517ca69bbafe10708c6559b5630f744bf46519182f67ced8b7687a3db351b153",
    ),
    "workflow_run": (
        "github-workflow-run-completed.json",
        "sha256=1e2337f76798f8286ad7138769d8da281073cdb26c068ef6682fa89498dbedcc",
    ),
    "repository_dispatch": (
        "github-repository-dispatch.json",
        "sha256=57bd2bf1998524f4e5e653bec77e1693bd67b2175d34a1459593068b1d6780da",
    ),
}
EXECUTE_TEST = "/execute_test_id_async"
FROM_URL = "/builds/from-url"


def config(api_url: str, revyl: str) -> str:
    api = f"{{url: '{api_url}', token: {{secret: github-token}}, timeout: 1}}"
    return (
        revyl
        + f"""
sources:
  github: {{secret: {{secret: github-webhook-secret}}, api: {api}}}
  github-runs: {{type: github, secret: {{secret: github-webhook-secret}}, api: {api},
                workflow_artifacts: true}}
routes:
  - name: release-android
    when: {{source: github, version: "v*"}}
    build: {{ingest: {{app_id: {APP}}}, asset: "*.apk", version_label: "{{version}}"}}
    tests: ["{TESTS[0]}"]
  - name: pr-android
    when: {{source: github, workflow: "Build Android*"}}
    build: {{lookup: {{app_id: {APP}}}, version_label: "{{commit}}"}}
    tests: ["{TESTS[1]}"]
  - name: dispatched
    when: {{source: github, app: "com.acme.*"}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: ["{TESTS[2]}"]
  - name: run-artifact
    when: {{source: github-runs}}
    build: {{ingest: {{app_id: {APP}}}, asset: "*.apk", version_label: "run-{{run_id}}"}}
    tests: ["{TESTS[0]}"]
"""
    )


@pytest.fixture(scope="module")
def _github_server():
    with FakeGitHubApi(token=GITHUB_TOKEN) as server:
        yield server


@pytest.fixture
def github_api(_github_server, fake_secret_manager):
    _github_server.reset()
    _github_server.add_commit("acme/shopper", "v2.4.0-rc.1", TAG_SHA)
    fake_secret_manager.set("github-webhook-secret", SECRET, project=PROJECT)
    fake_secret_manager.set("github-token", GITHUB_TOKEN, project=PROJECT)
    return _github_server


@pytest.fixture(scope="module")
def _shared_relay(tmp_path_factory, _revyl_server, _secret_server, _github_server):
    """One relay for the tests that share the config (their deliveries have unique GUIDs)."""
    text = config(_github_server.url, revyl_block(_revyl_server.url))
    with relay_process(tmp_path_factory.mktemp("github"), text, _secret_server.url) as process:
        yield process


@pytest.fixture
def relay(_shared_relay, fake_revyl, github_api):
    return _shared_relay


def fresh(data: dict) -> dict:
    """A sample made a new event: GitHub events are keyed by the ids in their signed body (a
    release's id, a run's attempt, a dispatch's whole payload), not by the delivery GUID."""
    unique = uuid.uuid4().int % 10**9
    if "release" in data:
        data["release"]["id"] = unique
    if "workflow_run" in data:
        data["workflow_run"]["run_attempt"] = unique
    if "client_payload" in data:
        data["client_payload"]["nonce"] = unique
    return data


def post(relay, event, body=None, *, signature=None, guid=None, path="/github", form=False):
    """POST a delivery as GitHub does: by default the event's shared sample as a new event."""
    if body is None:
        body = json.dumps(fresh(json.loads(payload(SAMPLES[event][0])))).encode()
    if form:
        body = urlencode({"payload": body.decode()}).encode()
    if signature is None:
        signature = "sha256=" + hmac_hex(SECRET, body, __import__("hashlib").sha256)
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "498122736",
        "User-Agent": "GitHub-Hookshot/5f9a1c2",
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
        **({"X-Hub-Signature-256": signature} if signature else {}),
    }
    return requests.post(relay.url + path, data=body, headers=headers, timeout=15)


def sample(name: str, change) -> bytes:
    data = fresh(json.loads(payload(name)))
    change(data)
    return json.dumps(data).encode()


def assert_json_answer(answer, status, decision):
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["decision"] == decision
    assert answer.json()["reason"]


@pytest.mark.parametrize("event", sorted(SAMPLES))
def test_the_shared_samples_with_their_known_signatures_are_acted_on(
    relay, fake_revyl, github_api, event
):
    fake_revyl.add_build(APP, SHA)
    name, known = SAMPLES[event]
    answer = post(relay, event, payload(name), signature=known)
    assert answer.json()["decision"] == "triggered", answer.text


def test_private_release_asset_is_ingested_by_a_signed_url_with_its_tag_commit(
    relay, fake_revyl, github_api
):
    answer = post(relay, "release")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "triggered"
    assert body["build"]["version"] == "v2.4.0-rc.1"
    assert body["build"]["commit"] == TAG_SHA  # the tag, resolved through the GitHub API
    (ingest,) = fake_revyl.calls_to(FROM_URL)
    assert ingest.json["from_url"] == github_api.asset_url(212345678)
    assert "headers" not in ingest.json  # the GitHub token never goes to Revyl
    assert ingest.json["version"] == "v2.4.0-rc.1"
    assert ingest.json["metadata"]["commit_sha"] == TAG_SHA
    (execute,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert execute.json["test_id"] == TESTS[0]
    assert execute.json["build_version_id"] == fake_revyl.builds(APP)[0]["id"]
    assert execute.headers["x-ci-system"] == "github"
    assert execute.headers["x-ci-repository"] == "acme/shopper"
    assert execute.headers["authorization"] == f"Bearer {REVYL_TOKEN}"
    assert [c.path for c in github_api.calls] == [
        "/repos/acme/shopper/commits/v2.4.0-rc.1",
        "/repos/acme/shopper/releases/assets/212345678",
    ]
    assert GITHUB_TOKEN not in answer.text
    assert GITHUB_TOKEN not in relay.log_text()


def test_a_private_release_asset_github_streams_goes_with_the_token_as_headers(
    relay, fake_revyl, github_api
):
    github_api.stream_release_assets = True
    answer = post(relay, "release")
    assert answer.json()["decision"] == "triggered", answer.text
    (ingest,) = fake_revyl.calls_to(FROM_URL)
    assert (
        ingest.json["from_url"] == f"{github_api.url}/repos/acme/shopper/releases/assets/212345678"
    )
    assert ingest.json["headers"] == {
        "Authorization": f"Bearer {GITHUB_TOKEN}",
        "Accept": "application/octet-stream",
    }


def test_public_release_asset_goes_to_revyl_as_its_download_url(relay, fake_revyl):
    def public(data):
        data["repository"]["private"] = False

    answer = post(relay, "release", sample("github-release-published.json", public))
    assert answer.json()["decision"] == "triggered", answer.text
    (ingest,) = fake_revyl.calls_to(FROM_URL)
    assert ingest.json["from_url"] == (
        "https://github.com/acme/shopper/releases/download/v2.4.0-rc.1/"
        "shopper-2.4.0-10190-release.apk"
    )
    assert "headers" not in ingest.json


def test_successful_workflow_run_runs_the_build_ci_uploaded(relay, fake_revyl, github_api):
    wanted = fake_revyl.add_build(APP, SHA)
    answer = post(relay, "workflow_run")
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"
    (execute,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert (execute.json["test_id"], execute.json["build_version_id"]) == (TESTS[1], wanted)
    headers = execute.headers
    assert (headers["x-ci-system"], headers["x-ci-commit-sha"]) == ("github-actions", SHA)
    assert (headers["x-ci-branch"], headers["x-ci-pr-number"]) == ("feature/coupon-rounding", "412")
    assert headers["x-ci-run-id"] == RUN_ID
    assert headers["x-ci-run-url"] == f"https://github.com/acme/shopper/actions/runs/{RUN_ID}"
    assert headers["x-ci-repository"] == "acme/shopper"
    assert fake_revyl.calls_to(FROM_URL) == []
    assert github_api.calls == []  # nothing to enrich without workflow_artifacts


def test_form_encoded_delivery_is_verified_on_its_raw_body(relay, fake_revyl):
    fake_revyl.add_build(APP, SHA)
    body = sample("github-workflow-run-completed.json", lambda data: None)
    answer = post(relay, "workflow_run", body, form=True)
    assert answer.json()["decision"] == "triggered", answer.text
    over_the_json = "sha256=" + hmac_hex(SECRET, body, __import__("hashlib").sha256)
    refused = post(relay, "workflow_run", body, form=True, signature=over_the_json)
    assert_json_answer(refused, 401, "rejected")


def test_workflow_artifact_is_minted_into_a_short_lived_url(relay, fake_revyl, github_api):
    github_api.add_run_artifact("acme/shopper", RUN_ID, "android-debug")
    apk = github_api.add_run_artifact("acme/shopper", RUN_ID, "app-release.apk")
    answer = post(relay, "workflow_run", path="/github-runs")
    assert answer.status_code == 200, answer.text
    (ingest,) = fake_revyl.calls_to(FROM_URL)
    assert ingest.json["from_url"] == github_api.download_url(apk["id"])
    assert "headers" not in ingest.json  # the GitHub token never leaves the relay
    assert ingest.json["version"] == f"run-{RUN_ID}"
    assert [c.path for c in github_api.calls] == [
        f"/repos/acme/shopper/actions/runs/{RUN_ID}/artifacts",
        f"/repos/acme/shopper/actions/artifacts/{apk['id']}/zip",
    ]


def test_repository_dispatch_client_payload_is_a_build(relay, fake_revyl):
    answer = post(relay, "repository_dispatch")
    assert answer.json()["decision"] == "triggered", answer.text
    (ingest,) = fake_revyl.calls_to(FROM_URL)
    assert ingest.json["from_url"] == "https://expo.dev/artifacts/eas/h7TnQw2sXb9pLmVc4aRy1k.apk"
    assert ingest.json["version"] == "2.4.0 (10187)"
    (execute,) = fake_revyl.calls_to(EXECUTE_TEST)
    assert execute.json["test_id"] == TESTS[2]
    assert execute.headers["x-ci-pr-number"] == "412"


@pytest.mark.parametrize("guid", ["the same", "a new one"])
def test_a_redelivery_is_a_duplicate_whatever_its_guid(relay, fake_revyl, guid):
    """A redelivery keeps the GUID; a captured body resent by anyone else has a new one, and
    neither starts anything again."""
    body = sample(SAMPLES["release"][0], lambda data: None)
    first_guid = str(uuid.uuid4())
    assert post(relay, "release", body, guid=first_guid).json()["decision"] == "triggered"
    again = post(relay, "release", body, guid=first_guid if guid == "the same" else None)
    assert again.status_code == 200
    assert again.json()["decision"] == "duplicate"
    assert len(fake_revyl.calls_to(EXECUTE_TEST)) == 1
    assert f'"delivery_id": "{first_guid}"' in relay.log_text()


def failed_run(data):
    data["workflow_run"]["conclusion"] = "failure"


def in_progress(data):
    data["action"] = "in_progress"
    data["workflow_run"]["conclusion"] = None


@pytest.mark.parametrize(
    ("event", "change", "reason"),
    [
        ("workflow_run", failed_run, "workflow run concluded 'failure', not 'success'"),
        ("workflow_run", in_progress, "workflow run 'in_progress': only completed runs"),
        ("ping", None, "ping: the hook reached the relay and its secret matches"),
        ("push", None, "GitHub event 'push' is not acted on"),
    ],
)
def test_unfinished_failed_and_other_deliveries_are_answered_200_ignored(
    relay, fake_revyl, github_api, event, change, reason
):
    if change is None:
        body = json.dumps({"zen": "Design for failure.", "hook_id": 498122736}).encode()
    else:
        body = sample("github-workflow-run-completed.json", change)
    answer = post(relay, event, body)
    assert_json_answer(answer, 200, "ignored")
    assert answer.json()["reason"].startswith(reason)
    assert fake_revyl.calls == []
    assert github_api.calls == []


@pytest.mark.parametrize(
    "signature", ["sha256=" + "0" * 64, SAMPLES["workflow_run"][1], "sha1=abc", ""]
)
def test_bad_or_missing_signature_is_401_and_nothing_is_called(
    relay, fake_revyl, github_api, signature
):
    answer = post(relay, "release", payload(SAMPLES["release"][0]), signature=signature or "")
    assert_json_answer(answer, 401, "rejected")
    assert fake_revyl.calls == []
    assert github_api.calls == []


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (json_reply(401, {"message": "Bad credentials"}), 502, "GitHub API refused (401)"),
        (json_reply(404, {"message": "Not Found"}), 502, "GitHub API refused (404)"),
        (json_reply(500, {"message": "Server Error"}), 503, "GitHub API answered 500"),
        (Reply(status=200, body=b"{}", delay=3.0), 503, "GitHub API did not answer in 1s"),
    ],
)
def test_github_api_failures_get_a_json_answer_and_start_nothing(
    relay, fake_revyl, github_api, reply, status, reason
):
    github_api.fail("/repos/", reply)
    for event, path in (("release", "/github"), ("workflow_run", "/github-runs")):
        answer = post(relay, event, path=path)
        assert_json_answer(answer, status, "failed")
        assert reason in answer.json()["reason"]
        if status == 503:
            assert answer.headers["Retry-After"] == "30"
    assert fake_revyl.calls_to(EXECUTE_TEST) == []


def test_an_artifact_gone_by_the_time_it_is_fetched_is_a_502(relay, fake_revyl, github_api):
    item = github_api.add_run_artifact("acme/shopper", RUN_ID, "app.apk")
    github_api.fail(f"/artifacts/{item['id']}/zip", json_reply(410, {"message": "Gone"}))
    answer = post(relay, "workflow_run", path="/github-runs")
    assert_json_answer(answer, 502, "failed")
    assert "GitHub API refused (410): Gone" in answer.json()["reason"]
    assert fake_revyl.calls == []


def test_private_release_without_a_token_says_what_to_set(start_relay, revyl_yaml, github_api):
    text = config(github_api.url, revyl_yaml).replace(", token: {secret: github-token}", "")
    text = text.replace(",\n                workflow_artifacts: true", "")
    relay = start_relay(text)
    answer = post(relay, "release")
    assert_json_answer(answer, 422, "failed")
    assert "set sources.github.api.token" in answer.json()["reason"]
    assert github_api.calls == []  # no token: the tag is not resolved either


def test_dry_run_plans_the_asset_without_showing_the_token(start_relay, fake_revyl, github_api):
    revyl = f"revyl: {{api_url: {fake_revyl.url}}}\n"
    relay = start_relay(config(github_api.url, revyl))
    answer = post(relay, "release")
    assert answer.json()["decision"] == "dry_run", answer.text
    calls = answer.json()["plan"][0]["calls"]
    assert calls[0]["body"]["from_url"] == "<link for shopper-2.4.0-10190-release.apk>"
    assert GITHUB_TOKEN not in answer.text
    assert fake_revyl.calls == []


def test_a_source_without_a_signing_secret_refuses_to_start(start_relay, revyl_yaml, github_api):
    text = config(github_api.url, revyl_yaml).replace(
        "github: {secret: {secret: github-webhook-secret}, ", "github: {"
    )
    with pytest.raises(FunctionProcessError) as caught:
        start_relay(text)
    assert "sources.github.secret: Field required: every source is authenticated" in str(
        caught.value
    )


def test_a_signing_secret_missing_from_secret_manager_is_a_503(
    start_relay, revyl_yaml, github_api, fake_revyl
):
    text = config(github_api.url, revyl_yaml).replace("github-webhook-secret}", "gh-nope}", 1)
    relay = start_relay(text)
    answer = post(relay, "release")
    assert_json_answer(answer, 503, "failed")
    assert "gh-nope" in answer.json()["reason"]
    assert fake_revyl.calls == []
