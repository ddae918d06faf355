"""The Slack thread reply is sent once: the follower's report task, in process, with the real
Slack target against the fake Slack Web API on loopback and the memory check store.

The verdict of a failed check is two calls (the message, then the thread reply); a 429 on the
reply makes the task run again, and that run, like every duplicate delivery after it, must not
repeat the message or post a second reply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.models import Execution
from relay.plugins import parse_config
from relay.reports import build_target
from relay.revyl.client import RequestsRevylClient
from relay.sandbox.fakes._http import RecordedCall, Reply
from relay.sandbox.fakes.slack_api import FakeSlackApi, slack_error
from relay.secrets import SecretManagerBackend, Secrets
from relay.stores.checks import MemoryCheckStore
from relay.tasks import RetryLater, Task, TaskQueue
from relay.verdicts.check import check_id
from relay.verdicts.follower import Follower

T1, T2 = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"
TOKEN, CHANNEL, EVENT = "xoxb-steps", "C0123ABCD", "eas:build-1:finished"


class HeldTasks(TaskQueue):
    """Keeps what is scheduled; the test runs the handlers itself."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: list[Task] = []

    def schedule(self, task: Task, attempt: int = 1) -> None:
        self.scheduled.append(task)


class ThreadLimitedSlack(FakeSlackApi):
    """The fake Slack Web API, rate limiting the next `limited` thread replies."""

    limited = 0

    def handle(self, call: RecordedCall) -> Reply:
        if isinstance(call.json, dict) and "thread_ts" in call.json and self.limited:
            self.limited -= 1
            return slack_error("ratelimited", 429, {"Retry-After": "2"})
        return super().handle(call)


@pytest.fixture
def slack() -> Iterator[ThreadLimitedSlack]:
    with ThreadLimitedSlack(token=TOKEN) as fake:
        yield fake


def follower_for(slack: FakeSlackApi, on: str) -> tuple[Follower, MemoryCheckStore]:
    config = parse_config(f"""
sources:
  eas: {{secret: {{env: EAS_SECRET}}}}
verdicts: {{follow: local, poll_seconds: 1}}
reports:
  team: {{type: slack, channel: {CHANNEL}, token: {{env: SLACK_TOKEN}},
         api_url: "{slack.url}/api"{on}}}
routes:
  - {{name: android-e2e, tests: [{T1}, {T2}], report: [team]}}
""")
    secrets = Secrets(
        SecretManagerBackend(), project=None, ttl_seconds=0, environ={"SLACK_TOKEN": TOKEN}
    )
    checks = MemoryCheckStore()
    targets = {"team": build_target("team", config.reports["team"], secrets)}
    follower = Follower(
        config,
        revyl=RequestsRevylClient(config.revyl),
        secrets=secrets,
        checks=checks,
        tasks=HeldTasks(),
        targets=targets,
    )
    return follower, checks


def open_and_fail(follower: Follower, checks: MemoryCheckStore) -> str:
    executions = [
        Execution(
            route="android-e2e",
            test_id=t,
            execution_id=f"x-{t[:4]}",
            report_url=f"https://app.revyl.ai/tests/report?taskId=x-{t[:4]}",
        )
        for t in (T1, T2)
    ]
    follower.start(
        {
            "event": EVENT,
            "route": "android-e2e",
            "report_to": ["team"],
            "build": {"version": "2.4.0", "build_number": "187"},
            "executions": [e.model_dump(mode="json") for e in executions],
        },
        1,
    )
    ident = check_id(EVENT, "android-e2e")
    stored = checks.get(ident)
    assert stored is not None
    runs = {
        key: run.model_copy(
            update={"outcome": "failed", "error": "login-flow failed"}
            if run.test_id == T2
            else {"outcome": "passed"}
        )
        for key, run in stored.runs.items()
    }
    checks.settle(ident, "failed", runs, now=0.0)
    return ident


def report(follower: Follower, ident: str, phase: str, attempt: int = 1) -> None:
    follower.report({"check": ident, "target": "team", "phase": phase}, attempt)


def top_level(slack: FakeSlackApi) -> list:
    return [c for c in slack.calls_to("chat.postMessage") if "thread_ts" not in c.json]


@pytest.mark.parametrize("on", ["", ", on: [failed]"], ids=["updated", "posted at the verdict"])
def test_a_retry_of_the_verdict_posts_neither_the_message_nor_the_reply_twice(slack, on):
    follower, checks = follower_for(slack, on)
    ident = open_and_fail(follower, checks)
    report(follower, ident, "started")
    assert len(top_level(slack)) == (0 if on else 1)

    slack.limited = 1
    with pytest.raises(RetryLater) as retry:
        report(follower, ident, "finished", attempt=1)  # the message, then a 429 on the reply
    assert retry.value.after == 2.0
    assert len(slack.calls_to("chat.postMessage")) == 2  # (the start or the verdict) + the reply
    report(follower, ident, "finished", attempt=2)  # the retry: the reply alone
    report(follower, ident, "finished", attempt=1)  # a duplicate delivery: nothing at all

    (message,) = slack.messages(CHANNEL)
    (reply,) = slack.replies(CHANNEL, message["ts"])
    assert T2 in reply["text"]
    assert len(top_level(slack)) == 1
    assert len(slack.calls_to("chat.update")) == (0 if on else 1)
    assert message["text"].startswith("android-e2e failed")


def test_a_reply_that_never_gets_through_is_given_up_and_the_message_stays(slack):
    follower, checks = follower_for(slack, "")
    ident = open_and_fail(follower, checks)
    report(follower, ident, "started")
    slack.limited = 100
    for attempt in range(1, 6):
        with pytest.raises(RetryLater):
            report(follower, ident, "finished", attempt=attempt)
    report(follower, ident, "finished", attempt=6)  # the last attempt: given up
    report(follower, ident, "finished", attempt=1)  # a late duplicate: nothing
    assert len(slack.calls_to("chat.update")) == 1
    assert len([c for c in slack.calls_to("chat.postMessage") if "thread_ts" in c.json]) == 6
    stored = checks.report(ident, "team:finished:thread")
    assert stored is not None
    assert stored.state == "gave_up"
