"""Codemagic end to end: the publishing script of examples/codemagic.yaml run with bash,
openssl and curl against functions-framework serving main.py, with fake Revyl, fake Secret
Manager and a fake Codemagic API on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply, json_reply
from relay.sandbox.fakes.codemagic_api import FakeCodemagicApi
from relay.sandbox.function_process import FunctionProcessError
from relay.signatures import standard_webhook_signature, verify_standard_webhook
from tests.conftest import PROJECT, REVYL_TOKEN, relay_process, revyl_block

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "examples" / "codemagic.yaml"
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
CODEMAGIC_TOKEN = "cm_e2e_Zr81bQx4"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TESTS = ["0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"]
SHA = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
APK_PATH = "/artifacts/2e7564b2-9ffa-40c2-b9e0-8980436ac717/81c5a723-b162-488a-854e-3f5f7fdfb22f"
ARTIFACT_LINKS = [
    {
        "name": "app-release.apk",
        "type": "apk",
        "url": f"https://api.codemagic.io{APK_PATH}/app-release.apk",
        "md5": "d2884be6985dad3ffc4d6f85b3a3642a",
        "versionName": "2.4.0",
        "bundleId": "com.acme.shopper",
    },
    {
        "name": "logs.txt",
        "type": "txt",
        "url": "https://api.codemagic.io/artifacts/2e7564b2/0c9d8e7f/logs.txt",
        "md5": "5f4dcc3b5aa765d61d8327deb882cf99",
    },
]
EXECUTE_TEST = "/execute_test_id_async"
FROM_URL = "/builds/from-url"


def config(api_url: str, revyl: str) -> str:
    api = f"{{url: '{api_url}', token: {{secret: codemagic-token}}, timeout: 1}}"
    return (
        revyl
        + f"""
sources:
  codemagic: {{secret: {{secret: codemagic-webhook-secret}}, api: {api}}}
  codemagic-no-token: {{type: codemagic, secret: {{secret: codemagic-webhook-secret}}}}
routes:
  - name: android-preview
    when: {{source: "codemagic*", workflow: "android-*"}}
    build: {{ingest: {{app_id: {APP}}}, asset: "*.apk"}}
    tests: {json.dumps(TESTS)}
"""
    )


class Recorder(FakeHTTPServer):
    """Stands in for the relay to capture exactly what the script sends."""

    name = "recorder"

    def handle(self, call: RecordedCall) -> Reply:
        return json_reply(200, {"decision": "recorded"})


@pytest.fixture(scope="module")
def _codemagic_server():
    with FakeCodemagicApi(token=CODEMAGIC_TOKEN) as server:
        yield server


@pytest.fixture
def codemagic_api(_codemagic_server, fake_secret_manager):
    _codemagic_server.reset()
    fake_secret_manager.set("codemagic-webhook-secret", SECRET, project=PROJECT)
    fake_secret_manager.set("codemagic-token", CODEMAGIC_TOKEN, project=PROJECT)
    return _codemagic_server


@pytest.fixture(scope="module")
def _shared_relay(tmp_path_factory, _revyl_server, _secret_server, _codemagic_server):
    """One relay for the tests that share the config (each posts its own build id)."""
    text = config(_codemagic_server.url, revyl_block(_revyl_server.url))
    with relay_process(tmp_path_factory.mktemp("codemagic"), text, _secret_server.url) as process:
        yield process


@pytest.fixture
def relay(_shared_relay, fake_revyl, codemagic_api):
    return _shared_relay


@pytest.fixture(scope="module")
def recorder():
    with Recorder() as server:
        yield server


def publishing_script() -> str:
    workflow = yaml.safe_load(SNIPPET.read_text())["workflows"]["android-preview"]
    return workflow["publishing"]["scripts"][0]["script"]


def run_script(
    tmp_path: Path, url: str, *, success: bool = True, secret: str = SECRET, **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the publishing script as Codemagic would; returns the process and its build id."""
    home = tmp_path / f"home-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    if success:
        (home / "SUCCESS").touch()
    build_id = env.pop("CM_BUILD_ID", uuid.uuid4().hex[:24])
    variables = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CM_BUILD_ID": build_id,
        "CM_PROJECT_ID": "6852b56f44dbac3d959a5e97",
        "CM_WORKFLOW_ID": "android-preview",
        "CM_WORKFLOW_NAME": "Android preview",
        "BUILD_NUMBER": "216",
        "CM_REPO_SLUG": "acme/shopper",
        "CM_BRANCH": "feature/coupon-rounding",
        "CM_COMMIT": SHA,
        "CM_PULL_REQUEST": "true",
        "CM_PULL_REQUEST_NUMBER": "412",
        "CM_ARTIFACT_LINKS": json.dumps(ARTIFACT_LINKS),
        "RELAY_URL": url,
        "RELAY_SECRET": secret,
        **env,
    }
    script = home / "publish.sh"
    script.write_text(publishing_script())
    process = subprocess.run(
        ["bash", str(script)],
        cwd=home,
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return process, build_id


def answer_of(process: subprocess.CompletedProcess[str]) -> dict:
    """The relay's JSON answer, as the script prints it to the build log."""
    return json.loads(process.stdout.strip().splitlines()[-1])


def recorded(recorder: Recorder, tmp_path: Path, **env: str) -> tuple[dict[str, str], bytes]:
    recorder.reset()
    process, _ = run_script(tmp_path, recorder.url + "/codemagic", **env)
    assert process.returncode == 0, process.stderr
    (call,) = recorder.calls
    return call.headers, call.body


def test_the_script_sends_a_signed_standard_webhook(recorder, tmp_path):
    headers, body = recorded(recorder, tmp_path, CM_BUILD_ID="6855b7a2ace9fb1462f5063f")
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "6855b7a2ace9fb1462f5063f"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    verify_standard_webhook(headers, body, secret=SECRET, now=time.time())
    assert json.loads(body) == {
        "event": "build.finished",
        "status": "success",
        "buildId": "6855b7a2ace9fb1462f5063f",
        "projectId": "6852b56f44dbac3d959a5e97",
        "workflowId": "android-preview",
        "workflowName": "Android preview",
        "buildNumber": "216",
        "buildUrl": "https://codemagic.io/app/6852b56f44dbac3d959a5e97/build/6855b7a2ace9fb1462f5063f",
        "git": {
            "repoSlug": "acme/shopper",
            "branch": "feature/coupon-rounding",
            "commit": SHA,
            "tag": "",
            "pullRequest": True,
            "pullRequestNumber": "412",
        },
        "artifacts": ARTIFACT_LINKS,
    }


def test_a_successful_build_ingests_a_public_link_and_starts_the_tests(
    relay, fake_revyl, codemagic_api, fake_secret_manager, tmp_path
):
    process, build_id = run_script(tmp_path, relay.url + "/codemagic")
    assert process.returncode == 0, process.stdout + process.stderr
    answer = answer_of(process)
    assert answer["decision"] == "triggered"
    assert answer["event"] == f"codemagic:{build_id}"
    assert len(answer["execution_ids"]) == 2

    (minted,) = codemagic_api.minted
    (mint_call,) = codemagic_api.calls
    assert mint_call.path == f"{APK_PATH}/app-release.apk/public-url"
    assert mint_call.headers["x-auth-token"] == CODEMAGIC_TOKEN
    (ingest,) = fake_revyl.calls_to(FROM_URL)
    assert ingest.json["from_url"] == minted["url"]
    assert "headers" not in ingest.json  # the Codemagic token never leaves the relay
    assert ingest.json["version"] == "2.4.0 (216)"
    assert ingest.json["metadata"]["app_identifier"] == "com.acme.shopper"
    executes = fake_revyl.calls_to(EXECUTE_TEST)
    assert sorted(c.json["test_id"] for c in executes) == TESTS
    for call in executes:
        assert call.json["build_version_id"] == fake_revyl.builds(APP)[0]["id"]
        assert call.headers["x-ci-system"] == "codemagic"
        assert call.headers["x-ci-commit-sha"] == SHA
        assert call.headers["x-ci-branch"] == "feature/coupon-rounding"
        assert call.headers["x-ci-pr-number"] == "412"
        assert call.headers["x-ci-run-id"] == build_id
        assert call.headers["x-ci-repository"] == "acme/shopper"
        assert call.headers["authorization"] == f"Bearer {REVYL_TOKEN}"
    assert fake_secret_manager.access_count("codemagic-token") <= 1  # cached per instance
    assert CODEMAGIC_TOKEN not in relay.log_text()


def test_a_failed_build_is_answered_200_ignored(relay, fake_revyl, codemagic_api, tmp_path):
    process, build_id = run_script(tmp_path, relay.url + "/codemagic", success=False)
    assert process.returncode == 0, process.stderr
    assert answer_of(process) == {
        "event": f"codemagic:{build_id}",
        "decision": "ignored",
        "reason": "the build did not succeed (status 'failure')",
        "execution_ids": [],
        "executions": [],
        "errors": [],
    }
    assert fake_revyl.calls == []
    assert codemagic_api.calls == []


def test_a_second_post_of_a_build_is_a_duplicate(relay, fake_revyl, tmp_path):
    first, build_id = run_script(tmp_path, relay.url + "/codemagic")
    assert answer_of(first)["decision"] == "triggered"
    second, _ = run_script(tmp_path, relay.url + "/codemagic", CM_BUILD_ID=build_id)
    assert second.returncode == 0
    assert answer_of(second)["decision"] == "duplicate"
    assert len(fake_revyl.calls_to(EXECUTE_TEST)) == 2


def test_a_wrong_secret_is_401_and_fails_the_publishing_step(relay, fake_revyl, tmp_path):
    process, _ = run_script(tmp_path, relay.url + "/codemagic", secret="whsec_" + "Zm9v" * 8)
    assert process.returncode == 1
    answer = answer_of(process)
    assert (answer["decision"], answer["reason"]) == ("rejected", "signature verification failed")
    assert fake_revyl.calls == []


def test_a_replayed_delivery_past_five_minutes_is_401(relay, fake_revyl, recorder, tmp_path):
    _, body = recorded(recorder, tmp_path)
    build_id = json.loads(body)["buildId"]
    sent_at = str(int(time.time()) - 400)
    stale = {
        "webhook-id": build_id,
        "webhook-timestamp": sent_at,
        "webhook-signature": "v1," + standard_webhook_signature(SECRET, build_id, sent_at, body),
    }
    answer = requests.post(relay.url + "/codemagic", data=body, headers=stale, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["reason"] == "webhook-timestamp is outside the 5 minute tolerance"
    assert fake_revyl.calls == []


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (json_reply(401, {"error": "Invalid token"}), 502, "Codemagic API refused (401)"),
        (json_reply(404, {"error": "Not found"}), 502, "Codemagic API refused (404)"),
        (json_reply(500, {"error": "boom"}), 503, "Codemagic API answered 500"),
        (Reply(status=200, body=b"{}", delay=3.0), 503, "Codemagic API did not answer in 1s"),
    ],
)
def test_codemagic_api_failures_get_a_json_answer_and_start_nothing(
    relay, fake_revyl, codemagic_api, recorder, tmp_path, reply, status, reason
):
    codemagic_api.fail("/public-url", reply)
    headers, body = recorded(recorder, tmp_path)  # exactly what the script sends
    answer = requests.post(relay.url + "/codemagic", data=body, headers=headers, timeout=15)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["decision"] == "failed"
    assert reason in answer.json()["reason"]
    if status == 503:
        assert answer.headers["Retry-After"] == "30"
    assert fake_revyl.calls_to(EXECUTE_TEST) == []
    assert fake_revyl.calls_to(FROM_URL) == []


@pytest.mark.parametrize("status", [302, 307, 308])
def test_the_codemagic_token_never_follows_a_redirect(
    relay, fake_revyl, codemagic_api, recorder, tmp_path, status
):
    """x-auth-token is not a header requests strips on a redirect: none is followed, so a
    redirect to another origin (here another port) never sees it."""
    headers, body = recorded(recorder, tmp_path)
    recorder.reset()
    codemagic_api.fail("/public-url", Reply(status, headers=(("Location", recorder.url),)))
    answer = requests.post(relay.url + "/codemagic", data=body, headers=headers, timeout=15)
    assert [c.headers.get("x-auth-token") for c in recorder.calls] == []
    assert answer.status_code == 502, answer.text
    assert f"Codemagic API answered {status}, a redirect: not followed" in answer.json()["reason"]
    assert fake_revyl.calls == []


def test_without_an_api_token_the_answer_says_what_to_set(relay, fake_revyl, tmp_path):
    process, _ = run_script(tmp_path, relay.url + "/codemagic-no-token")
    assert process.returncode == 1
    answer = answer_of(process)
    assert answer["decision"] == "failed"
    assert "set sources.codemagic-no-token.api.token" in answer["reason"]
    assert fake_revyl.calls == []


def test_a_source_without_a_signing_secret_refuses_to_start(start_relay, revyl_yaml, codemagic_api):
    text = config(codemagic_api.url, revyl_yaml).replace(
        "codemagic: {secret: {secret: codemagic-webhook-secret}, ", "codemagic: {"
    )
    with pytest.raises(FunctionProcessError) as caught:
        start_relay(text)
    assert "sources.codemagic.secret: Field required: every source is authenticated" in str(
        caught.value
    )


def test_the_docs_show_the_very_snippet_that_is_tested():
    docs = (REPO / "docs" / "sources" / "codemagic.md").read_text()
    assert SNIPPET.read_text() in docs
