"""A `/revyl run` typed in Slack gets its verdict in its own channel, end to end: signed slash
commands posted to functions-framework (`verdicts: {follow: local}`), the fake Revyl, and
loopback fakes of Slack's Web API and of a command's `response_url` (5 posts at most)."""

from __future__ import annotations

import json
import time

import pytest

from relay.sandbox.fakes.slack_api import FakeSlackApi
from relay.sandbox.fakes.slack_response_url import FakeSlackResponseUrl
from tests.conftest import PROJECT
from tests.e2e.test_slack import ALLOWED_USER, QA_CHANNEL, SIGNING_SECRET, command

T1 = "2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8"
BOT_TOKEN = "xoxb-relay-bot-3c9d"


@pytest.fixture
def slack_api():
    with FakeSlackApi(token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
def response_url():
    with FakeSlackResponseUrl() as fake:
        yield fake


@pytest.fixture
def relay_for(start_relay, revyl_yaml, fake_secret_manager, fake_revyl, slack_api, response_url):
    fake_secret_manager.set("slack-signing-secret", SIGNING_SECRET, project=PROJECT)
    fake_secret_manager.set("slack-bot-token", BOT_TOKEN, project=PROJECT)
    fake_revyl.script_test(
        T1, ["running", ("failed", {"success": False, "error_message": "checkout <!here> missing"})]
    )

    def start(bot_token: bool):
        bot = "bot_token: {secret: slack-bot-token}" if bot_token else ""
        return start_relay(
            revyl_yaml
            + f"""
sources:
  slack:
    secret: {{secret: slack-signing-secret}}
    team_id: T0001
    response_url_prefix: {response_url.prefix}
    api_url: "{slack_api.url}/api"
    {bot}
verdicts: {{follow: local, poll_seconds: 1, give_up_seconds: 60}}
routes:
  - name: android-nightly
    tests: [{T1}]
"""
        )

    return start


def run(relay, response_url: FakeSlackResponseUrl) -> None:
    answer = command(relay.url, "run android-nightly", response_url=response_url.response_url("7"))
    assert answer.status_code == 200, answer.text
    assert "android-nightly" in answer.json()["text"]


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def verdicts(posts: list[dict]) -> list[dict]:
    return [p for p in posts if "android-nightly failed" in p.get("text", "")]


def test_with_a_bot_token_the_verdict_is_posted_in_the_commands_channel(
    relay_for, slack_api, response_url
):
    relay = relay_for(bot_token=True)
    run(relay, response_url)
    (message,) = wait_for(lambda: slack_api.messages(QA_CHANNEL))
    assert message["text"] == "android-nightly failed: 0 of 1 passed — test 2b0f8e3c failed"
    shown = json.dumps(message["blocks"])
    assert f":x: <@{ALLOWED_USER}> *android-nightly* failed: 0 of 1 passed" in shown
    assert "`checkout &lt;!here&gt; missing`" in shown  # Revyl's words, escaped, as code
    (post,) = slack_api.calls_to("chat.postMessage")
    assert post.json["channel"] == QA_CHANNEL
    assert post.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    time.sleep(1.5)
    assert verdicts(response_url.posts()) == []
    assert "report to @slack delivered: check.finished" in relay.log_text()


def test_without_a_bot_token_the_verdict_goes_to_the_response_url(
    relay_for, slack_api, response_url
):
    relay = relay_for(bot_token=False)
    run(relay, response_url)
    (posted,) = wait_for(lambda: verdicts(response_url.posts()))
    assert posted["response_type"] == "in_channel"
    assert posted["replace_original"] is False
    assert f"<@{ALLOWED_USER}> *android-nightly* failed" in json.dumps(posted["blocks"])
    assert slack_api.calls == []


def test_a_response_url_slack_no_longer_takes_is_logged_as_undeliverable(
    relay_for, slack_api, response_url
):
    response_url.max_posts = 0  # as after five posts
    relay = relay_for(bot_token=False)
    run(relay, response_url)
    wait_for(lambda: "report to @slack refused" in relay.log_text())
    assert "undeliverable: Slack refused the command's response_url (404 used_url" in (
        relay.log_text()
    )
    assert response_url.posts() == []
