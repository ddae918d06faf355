"""Verdicts where the team looks, end to end on Cloud Tasks: a GitHub commit status and a
Slack message with its thread, each exactly once while every task is delivered twice.

Real parts: two relay instances (functions-framework processes) behind a round-robin front
end sharing the Firestore emulator; the real google-cloud-tasks client against the loopback
fake of Cloud Tasks (OIDC-signed dispatches, every task delivered twice); the fake Revyl moving
runs through their lifecycle; loopback fakes of GitHub's statuses API and Slack's Web API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from relay.sandbox.fakes.cloud_tasks import FakeCloudTasks
from relay.sandbox.fakes.github_api import FakeGitHubApi
from relay.sandbox.fakes.slack_api import FakeSlackApi
from tests.conftest import PROJECT
from tests.e2e.test_verdicts_local import T1, T2, failing_second_test, post_build
from tests.support.cloud import collection, on_cloud_tasks, verdicts_yaml, wait_until
from tests.support.front import RoundRobin

APP = "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"
SHA = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"  # the EAS sample's gitCommitHash
GITHUB_TOKEN, SLACK_TOKEN = "ghp_status_token_5d1c", "xoxb-bot-token-8e2a"
CHANNEL = "C0123ABCD"


@dataclass
class Deployment:
    front: RoundRobin
    tasks: FakeCloudTasks
    github: FakeGitHubApi
    slack: FakeSlackApi
    instances: list


def config(front_url: str, github_url: str, slack_url: str) -> str:
    return (
        verdicts_yaml(front_url)
        + f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
dedup: {{store: firestore, collection: {collection()}}}
reports:
  gh:
    type: github-status
    token: {{secret: github-status-token}}
    repository: acme/shopper
    api_url: "{github_url}"
  team:
    type: slack
    channel: {CHANNEL}
    token: {{secret: slack-bot-token}}
    api_url: "{slack_url}/api"
routes:
  - name: android-e2e
    when: {{source: eas, platform: android}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: [{T1}, {T2}]
    report: [gh, team]
"""
    )


@pytest.fixture
def deployment(
    start_relay,
    revyl_yaml,
    emulator,
    fake_revyl,
    fake_secret_manager,
) -> Iterator[Deployment]:
    fake_secret_manager.set("github-status-token", GITHUB_TOKEN, project=PROJECT)
    fake_secret_manager.set("slack-bot-token", SLACK_TOKEN, project=PROJECT)
    with FakeGitHubApi(token=GITHUB_TOKEN) as github, FakeSlackApi(token=SLACK_TOKEN) as slack:

        def config_for(front_url: str) -> str:
            return revyl_yaml + config(front_url, github.url, slack.url)

        with on_cloud_tasks(start_relay, config_for, emulator.env()) as cloud:
            yield Deployment(cloud.front, cloud.tasks, github, slack, cloud.instances)


def test_a_failing_test_gets_one_status_pair_one_message_and_one_thread_reply(
    deployment, fake_revyl
):
    failing_second_test(fake_revyl)
    answer = post_build(deployment.front)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"
    reports = {e["test_id"]: e["report_url"] for e in answer.json()["executions"]}
    github, slack = deployment.github, deployment.slack

    wait_until(lambda: len(github.statuses("acme/shopper", SHA)) >= 2)
    (message,) = slack.messages(CHANNEL)
    wait_until(lambda: slack.replies(CHANNEL, message["ts"]))
    assert deployment.tasks.wait_idle(30), deployment.tasks.pending()
    assert [a for a in deployment.tasks.attempts if a.duplicate], "no task was delivered twice"

    pending, failure = github.statuses("acme/shopper", SHA)
    assert (pending["state"], failure["state"]) == ("pending", "failure")
    assert {pending["context"], failure["context"]} == {"revyl/android-e2e"}
    assert pending["description"] == "2 tests running on 2.4.0 (10187)"
    assert failure["target_url"] == reports[T2]
    assert failure["description"] == "1 of 2 passed — test 1a9e7d2b failed: login-flow failed"
    assert len(failure["description"]) <= 140
    for call in github.calls_to("/statuses/"):
        assert call.headers["authorization"] == f"Bearer {GITHUB_TOKEN}"
        assert call.headers["accept"] == "application/vnd.github+json"
        assert call.headers["x-github-api-version"] == "2022-11-28"

    posts = slack.calls_to("chat.postMessage")
    top = [c for c in posts if "thread_ts" not in c.json]
    threaded = [c for c in posts if "thread_ts" in c.json]
    (update,) = slack.calls_to("chat.update")
    assert (len(top), len(threaded)) == (1, 1)
    assert update.json["ts"] == message["ts"] == threaded[0].json["thread_ts"]
    message = slack.message(CHANNEL, message["ts"])  # as it reads now (read above before all ran)
    assert message["text"].startswith("android-e2e failed: 1 of 2 passed")  # as updated
    assert ":x: *android-e2e* failed" in str(message["blocks"])
    (reply,) = slack.replies(CHANNEL, message["ts"])
    assert T2 in reply["text"]
    assert "login-flow failed" in str(reply["blocks"])
    assert reports[T2] in str(reply["blocks"])
    assert all(c.headers["authorization"] == f"Bearer {SLACK_TOKEN}" for c in slack.calls)


def test_a_redelivered_build_posts_nothing_new(deployment, fake_revyl):
    failing_second_test(fake_revyl)
    assert post_build(deployment.front).json()["decision"] == "triggered"
    github, slack = deployment.github, deployment.slack
    wait_until(lambda: len(slack.calls_to("chat.postMessage")) >= 2)  # the message, the reply
    assert post_build(deployment.front).json()["decision"] == "duplicate"
    assert deployment.tasks.wait_idle(30), deployment.tasks.pending()
    assert len(github.calls_to("/statuses/")) == 2
    assert [len(slack.calls_to(m)) for m in ("chat.postMessage", "chat.update")] == [2, 1]
