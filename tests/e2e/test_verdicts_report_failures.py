"""What each failure answer of GitHub and Slack does to a report, end to end (`follow:
local`): functions-framework serving the relay, the fake Revyl, and loopback fakes of GitHub's
statuses API and Slack's Web API answering as scripted. Refusals are logged with the fix and
not retried; 5xx and 429 are retried after the wait they ask for."""

from __future__ import annotations

import json
import time

import pytest

from relay.sandbox.fakes.github_api import FakeGitHubApi, github_error
from relay.sandbox.fakes.slack_api import FakeSlackApi
from tests.conftest import PROJECT
from tests.e2e.test_verdicts_local import T1, post_build

APP = "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"
SHA = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
GITHUB_TOKEN, SLACK_TOKEN = "ghp_status_token_5d1c", "xoxb-bot-token-8e2a"
CHANNEL = "C0123ABCD"


@pytest.fixture
def github():
    with FakeGitHubApi(token=GITHUB_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack():
    with FakeSlackApi(token=SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def relay_with(start_relay, revyl_yaml, fake_secret_manager, github, slack, fake_revyl):
    """A relay whose route of one test (passing) reports to `gh` and `team`."""
    fake_secret_manager.set("slack-bot-token", SLACK_TOKEN, project=PROJECT)
    fake_revyl.script_test(T1, ["running", ("completed", {"success": True})])

    def start(*, gh: str = "repository: acme/shopper", team: str = "", token=GITHUB_TOKEN):
        fake_secret_manager.set("github-status-token", token, project=PROJECT)
        text = f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
verdicts: {{follow: local, poll_seconds: 1, give_up_seconds: 60}}
reports:
  gh: {{type: github-status, token: {{secret: github-status-token}}, api_url: "{github.url}",
       {gh}}}
  team: {{type: slack, channel: {CHANNEL}, token: {{secret: slack-bot-token}},
         api_url: "{slack.url}/api", {team}}}
routes:
  - name: android-e2e
    when: {{source: eas, platform: android}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: [{T1}]
    report: [gh, team]
"""
        relay = start_relay(revyl_yaml + text)
        assert post_build(relay).json()["decision"] == "triggered"
        return relay

    return start


def settled(relay, count: int = 4, timeout: float = 40.0) -> list[dict]:
    """The log lines once `count` reports (2 targets × 2 phases) were delivered, skipped or
    refused."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(x) for x in relay.log_text().splitlines() if x.startswith("{")]
        done = [x for x in lines if x.get("message", "").startswith("report to ")]
        done = [x for x in done if "retrying" not in x["message"]]
        if len(done) >= count or time.monotonic() > deadline:
            time.sleep(0.5)  # anything more it would do has had its chance
            return [json.loads(x) for x in relay.log_text().splitlines() if x.startswith("{")]


def messages(lines: list[dict], target: str) -> list[str]:
    return [x["message"] for x in lines if x.get("target") == target]


def test_github_422_for_an_unknown_commit_is_logged_and_not_retried(relay_with, github):
    github.unknown_shas.add(SHA)
    lines = settled(relay_with())
    said = messages(lines, "gh")
    assert len(github.calls_to("/statuses/")) == 2  # one per phase, none again
    assert (
        said
        == [
            f"report to gh refused: GitHub refused the status for commit {SHA} on acme/shopper "
            f"(422 No commit found for SHA: {SHA}): is the commit pushed to that repository?"
        ]
        * 2
    )
    assert github.statuses("acme/shopper", SHA) == []


def test_github_401_names_the_token_to_fix(relay_with, github):
    lines = settled(relay_with(token="ghp_revoked"))
    assert all("(401 Bad credentials): check reports.gh.token" in m for m in messages(lines, "gh"))
    assert len(github.calls_to("/statuses/")) == 2
    assert "ghp_revoked" not in "\n".join(map(str, lines))


def test_github_404_names_the_repository_to_fix(relay_with, github):
    github.fail("/statuses/", github_error(404))
    lines = settled(relay_with(gh="repository: acme/gone"))
    said = messages(lines, "gh")
    assert said[0].startswith("report to gh refused: GitHub knows no repository acme/gone")
    assert "check reports.gh.repository" in said[0]
    assert len(github.calls_to("/statuses/")) == 2


def test_github_5xx_is_retried_after_its_retry_after(relay_with, github):
    github.fail("/statuses/", github_error(503, retry_after=1), times=1)
    lines = settled(relay_with())
    assert "report to gh failed; retrying in 1 s" in messages(lines, "gh")
    assert [s["state"] for s in github.statuses("acme/shopper", SHA)] == ["pending", "success"]
    assert len(github.calls_to("/statuses/")) == 3


def test_without_a_repository_nothing_is_posted_and_the_reason_is_logged_once(relay_with, github):
    lines = settled(relay_with(gh="context: 'revyl/{route}'"))  # the EAS sample has none
    skips = [m for m in messages(lines, "gh") if "skipped" in m]
    assert skips == [
        "report to gh skipped: no repository: the build names none, so set "
        "`repository: owner/name` on the target"
    ]
    assert github.calls == []


def test_slack_not_in_channel_is_logged_with_the_fix_and_not_retried(relay_with, slack):
    slack.error("not_in_channel", channel=CHANNEL)
    lines = settled(relay_with())
    said = messages(lines, "team")
    assert len(said) == 2
    assert all("invite it to the channel (/invite @your-app)" in m for m in said)
    assert len(slack.calls_to("chat.postMessage")) == 2  # the start, then the verdict: once each
    assert slack.messages(CHANNEL) == []


def test_slack_429_is_retried_after_its_retry_after(relay_with, slack):
    slack.ratelimit(retry_after=1, method="chat.postMessage", times=1)
    lines = settled(relay_with())
    assert "report to team failed; retrying in 1 s" in messages(lines, "team")
    (message,) = slack.messages(CHANNEL)
    assert message["text"].startswith("android-e2e passed: 1 of 1 passed")
    assert len(slack.calls_to("chat.postMessage")) == 2  # the 429, then the message
    assert len(slack.calls_to("chat.update")) == 1


def test_slack_invalid_auth_names_the_token(relay_with, slack, fake_secret_manager):
    slack.token = "xoxb-another-workspace"
    lines = settled(relay_with())
    assert all("check reports.team.token" in m for m in messages(lines, "team"))


def test_a_failures_only_channel_stays_quiet_on_a_green_build(relay_with, slack):
    lines = settled(relay_with(team="on: [failed, error]"))
    assert slack.calls == []
    assert "report to team skipped: the verdict passed is not in reports.team.on" in messages(
        lines, "team"
    )
