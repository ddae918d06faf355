"""Slack chat-ops end to end: signed slash commands posted to functions-framework serving
main.py, the fake Revyl and Secret Manager on loopback, and a fake `response_url` endpoint
that records the follow-ups.

Run as a script it measures the warm path instead (docs/slack.md, Time):
    .venv/bin/python -m tests.e2e.test_slack [--requests 200] [--revyl-latency 0.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from relay.config import SecretRef
from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply
from relay.sandbox.fakes.revyl import (
    EXECUTE_TEST_PATH,
    EXECUTE_WORKFLOW_PATH,
    Delay,
    FakeRevyl,
    Status,
)
from relay.sandbox.fakes.secret_manager import FakeSecretManager
from relay.sandbox.fakes.slack_response_url import FakeSlackResponseUrl
from relay.sandbox.function_process import FunctionProcess
from relay.sources.slack import SlackSettings, SlackSource
from tests.conftest import PROJECT, REVYL_TOKEN, SECRETS

SIGNING_SECRET = "slack-signing-secret-4d1f0a9b7c"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TESTS = ["0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"]
ANDROID_TEST = "2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8"
WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
ALLOWED_USER, QA_CHANNEL = "U0ALLOWED", "C0MOBILEQA"
SIGNER = SlackSource(
    "slack", SlackSettings(type="slack", secret=SecretRef(env="UNUSED"), team_id="T0001")
)


def config(revyl_url: str, response_url_prefix: str, reply_within: float) -> str:
    return f"""
revyl: {{api_url: {revyl_url}, app_url: https://app.revyl.ai, token: {{secret: revyl-api-key}},
         request_timeout: 5, retry_deadline: 3}}
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
  slack:
    secret: {{secret: slack-signing-secret}}
    team_id: T0001
    allow: {{users: [{ALLOWED_USER}, U0SECOND], channels: [{QA_CHANNEL}]}}
    reply_within: {reply_within}
    response_url_prefix: {response_url_prefix}
routes:
  - name: ios-smoke
    when: {{source: eas, platform: ios, profile: preview}}
    build: {{lookup: {{app_id: {APP}}}}}
    tests: {json.dumps(TESTS)}
    workflows: [{WORKFLOW}]
  - name: android-nightly
    when: {{source: eas, platform: android}}
    tests: [{ANDROID_TEST}]
"""


def start(
    tmp: Path,
    revyl: FakeRevyl,
    secrets: FakeSecretManager,
    slack: FakeSlackResponseUrl,
    reply_within: float,
    response_url_prefix: str | None = None,
) -> FunctionProcess:
    for name, value in {**SECRETS, "slack-signing-secret": SIGNING_SECRET}.items():
        secrets.set(name, value, project=PROJECT)
    path = tmp / f"relay-{reply_within}.yaml"
    path.write_text(config(revyl.url, response_url_prefix or slack.prefix, reply_within))
    env = {
        "RELAY_CONFIG": str(path),
        "RELAY_SECRET_MANAGER_ENDPOINT": secrets.url,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
    }
    return FunctionProcess(env, log_path=tmp / f"relay-{reply_within}.log").start()


@pytest.fixture(scope="module")
def _slack_server() -> Iterator[FakeSlackResponseUrl]:
    with FakeSlackResponseUrl() as server:
        yield server


@pytest.fixture
def slack(_slack_server: FakeSlackResponseUrl) -> FakeSlackResponseUrl:
    _slack_server.reset()
    return _slack_server


@pytest.fixture(scope="module")
def relay(tmp_path_factory, _revyl_server, _secret_server, _slack_server) -> Iterator:
    tmp = tmp_path_factory.mktemp("slack")
    # a generous budget: these tests want the immediate answer, whatever the machine's load
    process = start(tmp, _revyl_server, _secret_server, _slack_server, reply_within=20)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def hasty_relay(tmp_path_factory, _revyl_server, _secret_server, _slack_server) -> Iterator:
    tmp = tmp_path_factory.mktemp("slack-hasty")
    process = start(tmp, _revyl_server, _secret_server, _slack_server, reply_within=0.3)
    yield process
    process.stop()


def command(
    url: str,
    text: str,
    *,
    user: str = ALLOWED_USER,
    channel: str = QA_CHANNEL,
    team: str = "T0001",
    trigger: str | None = None,
    response_url: str = "https://hooks.slack.com/commands/T0001/1/unused",
    timestamp: float | None = None,
    secret: str = SIGNING_SECRET,
) -> requests.Response:
    body = urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": team,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "mobile-qa",
            "user_id": user,
            "user_name": "jdoe",
            "command": "/revyl",
            "text": text,
            "api_app_id": "A0RELAY",
            "response_url": response_url,
            "trigger_id": trigger or f"{time.time_ns()}.1234.{uuid.uuid4().hex}",
        }
    ).encode()
    headers = SIGNER.sign(body, secret, time.time() if timestamp is None else timestamp, "")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return requests.post(f"{url}/slack", data=body, headers=headers, timeout=30)


def rendered(message: dict) -> str:
    return json.dumps(message["blocks"])


def execution_ids(message: dict) -> set[str]:
    """Execution ids named in a `run` answer (the last column of each line)."""
    found = set()
    for block in message["blocks"]:
        for line in block.get("text", {}).get("text", "").splitlines():
            if line.startswith(":white_check_mark:"):
                found.add(line.rsplit("`", 2)[-2])
    return found


# run


def test_run_with_a_label_starts_the_route_on_that_build_and_names_every_execution(
    relay, fake_revyl, slack
):
    fake_revyl.add_build(APP, "2.4.0 (1870)")
    wanted = fake_revyl.add_build(APP, "2.4.0 (187)")

    answer = command(relay.url, "run ios-smoke 2.4.0 (187)")

    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    message = answer.json()
    assert message["response_type"] == "in_channel"
    assert message["text"] == f"<@{ALLOWED_USER}> ran ios-smoke on 2.4.0 (187): 3 started"
    assert f"<@{ALLOWED_USER}> ran *ios-smoke* on `2.4.0 (187)`" in rendered(message)
    assert wanted in rendered(message)

    tests = fake_revyl.calls_to(EXECUTE_TEST_PATH)
    workflows = fake_revyl.calls_to(EXECUTE_WORKFLOW_PATH)
    assert sorted(c.json["test_id"] for c in tests) == sorted(TESTS)
    assert {c.json["build_version_id"] for c in tests} == {wanted}
    assert workflows[0].json["build_config"] == {
        "ios_build": {"app_id": APP, "pinned_version": "2.4.0 (187)"}
    }
    for call in tests + workflows:
        assert call.headers["authorization"] == f"Bearer {REVYL_TOKEN}"
        assert call.headers["x-ci-system"] == "slack"

    ids = execution_ids(message)
    assert len(ids) == 3
    assert all(fake_revyl.execution(i) for i in ids)
    for i in ids:
        kind = fake_revyl.execution(i)["kind"]
        assert f"https://app.revyl.ai/{kind}s/report?taskId={i}|report" in rendered(message)
    assert slack.posts() == []  # answered in time: nothing follows


def test_run_without_a_build_uses_the_tests_attached_builds(relay, fake_revyl):
    message = command(relay.url, "run ios-smoke").json()
    assert "the tests' attached builds" in message["text"]
    tests = fake_revyl.calls_to(EXECUTE_TEST_PATH)
    assert len(tests) == 2
    assert all("build_version_id" not in c.json for c in tests)
    (workflow,) = fake_revyl.calls_to(EXECUTE_WORKFLOW_PATH)
    assert "build_config" not in workflow.json
    assert fake_revyl.calls_to("/builds") == []


def test_an_execution_id_from_revyl_cannot_put_a_link_in_the_channel(relay, fake_revyl):
    hostile = "abc>|<https://evil.example/|click here"
    started = {"status": "queued", "message": "ok", "id": hostile, "task_id": hostile}
    fake_revyl.fail(EXECUTE_TEST_PATH, Status(200, started))
    message = command(relay.url, "run android-nightly").json()
    assert message["response_type"] == "in_channel", message
    for text in [message["text"], rendered(message)]:
        assert "<https://evil.example" not in text
        assert "|click here>" not in text
    assert "abc&gt;|&lt;https://evil.example/|click here" in rendered(message)  # shown as text


def test_run_with_a_build_id_runs_the_tests_on_it_and_says_workflows_were_left_out(
    relay, fake_revyl
):
    build_id = str(uuid.uuid4())
    message = command(relay.url, f"run ios-smoke {build_id}").json()
    assert message["response_type"] == "in_channel"
    assert {c.json["build_version_id"] for c in fake_revyl.calls_to(EXECUTE_TEST_PATH)} == {
        build_id
    }
    assert fake_revyl.calls_to(EXECUTE_WORKFLOW_PATH) == []
    assert "workflows pin their build by version label" in rendered(message)


def test_a_label_revyl_does_not_have_is_listed_as_failures_and_starts_nothing(relay, fake_revyl):
    message = command(relay.url, "run ios-smoke 9.9.9 (1)").json()
    assert message["response_type"] == "in_channel"
    assert message["text"].endswith(": 0 started, 3 failed")
    assert "no build labelled '9.9.9 (1)' in Revyl app" in rendered(message)
    assert fake_revyl.started(EXECUTE_TEST_PATH) == []
    assert fake_revyl.started(EXECUTE_WORKFLOW_PATH) == []


def test_revyl_refusing_one_test_is_shown_with_its_reason(relay, fake_revyl):
    from relay.sandbox.fakes.revyl import Status

    fake_revyl.fail(EXECUTE_TEST_PATH, Status(402, {"detail": "No device minutes left"}))
    message = command(relay.url, "run android-nightly").json()
    assert message["text"].endswith("0 started, 1 failed")
    assert "Revyl refused (402): No device minutes left" in rendered(message)


def test_a_replayed_trigger_starts_nothing_new_but_the_same_command_again_does(relay, fake_revyl):
    first = command(relay.url, "run android-nightly", trigger="42.42.replayed").json()
    again = command(relay.url, "run android-nightly", trigger="42.42.replayed").json()
    assert len(fake_revyl.calls_to(EXECUTE_TEST_PATH)) == 1
    assert "already ran" in again["text"]
    assert execution_ids(again) == execution_ids(first)

    command(relay.url, "run android-nightly")  # typed again on purpose: a new trigger_id
    assert len(fake_revyl.calls_to(EXECUTE_TEST_PATH)) == 2


# refusals: each its documented answer, nothing started


def test_a_bad_signature_is_401(relay, fake_revyl):
    answer = command(relay.url, "run ios-smoke", secret="not-the-signing-secret")
    assert answer.status_code == 401
    assert answer.json()["decision"] == "rejected"
    assert answer.json()["reason"] == "signature verification failed"
    assert fake_revyl.calls == []


def test_a_stale_timestamp_is_401(relay, fake_revyl):
    answer = command(relay.url, "run ios-smoke", timestamp=time.time() - 301)
    assert answer.status_code == 401
    reason = answer.json()["reason"]
    assert reason == "X-Slack-Request-Timestamp is outside the 5 minute tolerance"
    assert fake_revyl.calls == []


@pytest.mark.parametrize(
    ("text", "who", "says"),
    [
        ("run ios-smoke", {"team": "T0OTHER"}, "does not serve this Slack workspace"),
        ("run ios-smoke", {"user": "U0INTRUDER"}, "allow-list does not include you"),
        ("run ios-smoke", {"channel": "C0RANDOM"}, "allow-list does not include you"),
        ("run ios-smoek 2.4.0 (187)", {}, "There is no route named 'ios-smoek'"),
        ("deploy ios-smoke", {}, "I don't know the command 'deploy'"),
    ],
)
def test_refusals_are_ephemeral_and_start_nothing(relay, fake_revyl, slack, text, who, says):
    answer = command(relay.url, text, **who)
    assert answer.status_code == 200  # Slack shows any other status as a bare error
    message = answer.json()
    assert message["response_type"] == "ephemeral"
    assert says in message["text"] + rendered(message)
    assert fake_revyl.calls == []
    assert slack.posts() == []


def test_every_command_is_logged_with_the_user_id(relay, fake_revyl):
    command(relay.url, "run ios-smoke", user="U0INTRUDER")
    lines = [json.loads(line) for line in relay.log_text().splitlines() if line.startswith("{")]
    logged = [e for e in lines if e.get("user_id") == "U0INTRUDER"]
    assert logged
    assert logged[-1]["command"] == "/revyl run ios-smoke"
    assert logged[-1]["channel_id"] == QA_CHANNEL
    assert SIGNING_SECRET not in relay.log_text()
    assert REVYL_TOKEN not in relay.log_text()


# status, routes, help


def test_status_of_a_test_and_of_a_workflow(relay, fake_revyl):
    ids = execution_ids(command(relay.url, "run ios-smoke").json())
    test_id = next(i for i in ids if fake_revyl.execution(i)["kind"] == "test")
    workflow_id = next(i for i in ids if fake_revyl.execution(i)["kind"] == "workflow")
    fake_revyl.set_status(test_id, status="completed", success=True, progress=100.0)

    message = command(relay.url, f"status {test_id}").json()
    assert message["response_type"] == "ephemeral"
    assert message["text"] == (
        f"Test execution {test_id}: completed, 100%, passed · "
        f"https://app.revyl.ai/tests/report?taskId={test_id}"
    )
    (call,) = fake_revyl.calls_to("/tests/get_test_execution_task")
    assert call.query == {"task_id": test_id}

    message = command(relay.url, f"status {workflow_id}").json()
    assert message["text"].startswith(f"Workflow execution {workflow_id}: running, 40%, running")
    assert f"workflows/report?taskId={workflow_id}|Open the report" in rendered(message)


def test_status_of_an_unknown_execution(relay, fake_revyl):
    unknown = str(uuid.uuid4())
    message = command(relay.url, f"status {unknown}").json()
    assert message["text"] == f"Revyl knows no test or workflow execution {unknown}."


def test_routes_lists_the_routes_and_their_tests(relay, fake_revyl):
    message = command(relay.url, "routes").json()
    assert message["text"] == "Routes you can run: ios-smoke, android-nightly"
    assert all(t in rendered(message) for t in [*TESTS, ANDROID_TEST, WORKFLOW])
    assert fake_revyl.calls == []


def test_help(relay, fake_revyl):
    message = command(relay.url, "help").json()
    assert message["response_type"] == "ephemeral"
    assert "/revyl status &lt;execution id&gt;" in message["text"]


# past the budget: answer at once, the rest on response_url


def test_a_slow_revyl_gets_an_immediate_answer_and_the_links_follow(hasty_relay, fake_revyl, slack):
    fake_revyl.fail(EXECUTE_TEST_PATH, Delay(1.5))
    answer = command(hasty_relay.url, "run android-nightly", response_url=slack.response_url("1"))

    assert answer.status_code == 200
    first = answer.json()
    assert first["response_type"] == "in_channel"
    assert first["text"] == (
        f"<@{ALLOWED_USER}> is running android-nightly on the tests' attached builds: "
        "starting 1 test… the report links follow in this channel."
    )
    (follow_up,) = slack.wait_for(1)
    assert follow_up["response_type"] == "in_channel"
    assert follow_up["text"].endswith(
        "ran android-nightly on the tests' attached builds: 1 started"
    )
    (started,) = execution_ids(follow_up)
    assert fake_revyl.execution(started)["request"]["test_id"] == ANDROID_TEST
    deadline = time.monotonic() + 10  # the relay logs the post once Slack has answered it
    while "follow-up posted" not in hasty_relay.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "follow-up posted" in hasty_relay.log_text()


def test_a_follow_up_goes_only_to_the_allowed_response_url_prefix(hasty_relay, fake_revyl, slack):
    fake_revyl.fail(EXECUTE_TEST_PATH, Delay(1.0))
    elsewhere = slack.url + "/elsewhere/hook"  # same fake, outside the configured prefix
    answer = command(hasty_relay.url, "run android-nightly", response_url=elsewhere)
    assert "is running" in answer.json()["text"]
    deadline = time.monotonic() + 10
    while "follow-up not posted" not in hasty_relay.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "follow-up not posted: response_url is not under" in hasty_relay.log_text()
    assert slack.calls == []
    assert len(fake_revyl.started(EXECUTE_TEST_PATH)) == 1  # the run itself still started


class Redirector(FakeHTTPServer):
    """A response_url under the allowed prefix that redirects elsewhere (another origin)."""

    name = "redirector"
    location = ""

    def handle(self, call: RecordedCall) -> Reply:
        return Reply(status=307, headers=(("Location", self.location),))


def test_a_follow_up_is_never_posted_on_to_where_a_redirect_points(
    tmp_path, fake_revyl, fake_secret_manager, slack
):
    with Redirector() as redirector:
        redirector.location = slack.response_url("elsewhere")
        relay = start(
            tmp_path, fake_revyl, fake_secret_manager, slack, 0.3, redirector.url + "/commands/"
        )
        try:
            fake_revyl.fail(EXECUTE_TEST_PATH, Delay(1.0))
            url = redirector.url + "/commands/T0001/1/hook"
            answer = command(relay.url, "run android-nightly", response_url=url)
            assert "is running" in answer.json()["text"]
            deadline = time.monotonic() + 10
            while "follow-up NOT posted" not in relay.log_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert slack.calls == []
            assert len(redirector.calls) == 1
            assert '"slack_status": 307' in relay.log_text()
        finally:
            relay.stop()


# the timing measurement (python -m tests.e2e.test_slack)


def measure(count: int, revyl_latency: float) -> None:
    with (
        FakeRevyl(token=REVYL_TOKEN, latency=revyl_latency) as revyl,
        FakeSecretManager() as secrets,
        FakeSlackResponseUrl() as slack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        revyl.add_build(APP, "2.4.0 (187)")
        process = start(Path(tmp), revyl, secrets, slack, reply_within=2.0)
        try:
            first = _timed(process.url, "run ios-smoke 2.4.0 (187)")
            for text, label in (
                ("run ios-smoke 2.4.0 (187)", "run, label lookup + 2 tests + 1 workflow"),
                ("run android-nightly", "run, 1 test on its attached build"),
                ("routes", "routes"),
            ):
                samples = [_timed(process.url, text) for _ in range(count)]
                _report(label, samples)
            print(f"first command after start-up (cold secrets and connections): {first:.1f} ms")
            print(f"Revyl calls: {len(revyl.calls)}; follow-ups posted: {len(slack.calls)}")
        finally:
            process.stop()


def _timed(url: str, text: str) -> float:
    began = time.perf_counter()
    answer = command(url, text)
    elapsed = (time.perf_counter() - began) * 1000
    assert answer.status_code == 200, answer.text
    assert "is running" not in answer.json()["text"], "deferred: over the budget"
    return elapsed


def _report(label: str, samples: list[float]) -> None:
    samples.sort()
    p95 = samples[max(0, round(len(samples) * 0.95) - 1)]
    print(
        f"{label}: n={len(samples)} median {statistics.median(samples):.1f} ms, "
        f"p95 {p95:.1f} ms, max {samples[-1]:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Time signed slash commands on a warm relay.")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--revyl-latency", type=float, default=0.0, help="seconds per Revyl call")
    arguments = parser.parse_args()
    measure(arguments.requests, arguments.revyl_latency)
