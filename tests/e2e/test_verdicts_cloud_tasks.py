"""Verdicts followed on Cloud Tasks (`follow: cloud-tasks`), end to end, with real parts:

- the real google-cloud-tasks client (REST, anonymous credentials) against a loopback fake of
  the Cloud Tasks API, which dispatches every task at its time with an OIDC token signed by a
  local key (certificates served on loopback), and delivers every task twice;
- two relay instances (functions-framework processes) behind a round-robin front end, as Cloud
  Run spreads requests, sharing the Firestore emulator;
- the fake Revyl moving runs through their lifecycle; a Standard Webhooks receiver verifying
  every message with the `standardwebhooks` package.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from relay.sandbox.fakes.cloud_tasks import FakeCloudTasks
from relay.sandbox.fakes.oidc import OidcIssuer, SigningKey
from relay.sandbox.fakes.webhook_receiver import WebhookReceiver
from tests.e2e.test_verdicts_local import (
    HOOK_SECRET,
    T1,
    T2,
    W1,
    failing_second_test,
    post_build,
)
from tests.support.cloud import TASKS_SA, CloudDeployment, collection, on_cloud_tasks, verdicts_yaml
from tests.support.front import RoundRobin

APP = "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"


def config(front_url: str, receiver_url: str) -> str:
    return (
        verdicts_yaml(front_url)
        + f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
dedup: {{store: firestore, collection: {collection()}}}
reports:
  ci-hook: {{type: webhook, url: "{receiver_url}/verdicts", secret: {{env: HOOK_SECRET}}}}
routes:
  - name: android-e2e
    when: {{source: eas, platform: android}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: [{T1}, {T2}]
    workflows: [{W1}]
    report: [ci-hook]
"""
    )


@dataclass
class Deployment:
    cloud: CloudDeployment
    receiver: WebhookReceiver

    @property
    def front(self) -> RoundRobin:
        return self.cloud.front

    @property
    def tasks(self) -> FakeCloudTasks:
        return self.cloud.tasks

    @property
    def issuer(self) -> OidcIssuer:
        return self.cloud.issuer

    @property
    def url(self) -> str:
        return self.cloud.url


@pytest.fixture
def deployment(start_relay, revyl_yaml, emulator, fake_revyl) -> Iterator[Deployment]:
    with WebhookReceiver(secret=HOOK_SECRET) as receiver:

        def config_for(front_url: str) -> str:
            return revyl_yaml + config(front_url, receiver.url)

        env = {**emulator.env(), "HOOK_SECRET": HOOK_SECRET}
        with on_cloud_tasks(start_relay, config_for, env) as cloud:
            yield Deployment(cloud, receiver)


def logs(deployment: Deployment) -> str:
    return deployment.cloud.logs()


def test_a_failing_test_is_reported_once_each_phase_with_tasks_delivered_twice(
    deployment, fake_revyl
):
    failing_second_test(fake_revyl)
    answer = post_build(deployment.front)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "triggered"

    messages = deployment.receiver.wait_for(2, timeout=60)
    assert [m.payload["type"] for m in messages] == ["check.started", "check.finished"]
    assert [m.attempts for m in messages] == [1, 1]  # each message sent once
    assert all(a.verified for a in deployment.receiver.attempts)
    finished = messages[1].payload["data"]
    assert finished["verdict"] == "failed"
    runs = {r.get("test_id") or r.get("workflow_id"): r for r in finished["runs"]}
    assert (runs[T1]["passed"], runs[T2]["passed"], runs[W1]["passed"]) == (True, False, True)
    assert runs[T2]["report_url"].endswith(runs[T2]["execution_id"])

    assert deployment.tasks.wait_idle(30), deployment.tasks.pending()
    duplicates = [a for a in deployment.tasks.attempts if a.duplicate]
    assert duplicates, "the fake delivered no task twice"
    served = {backend for backend, path in deployment.front.served if "_relay/task" in path}
    assert len(served) == 2  # both instances ran tasks
    assert logs(deployment).count("verdict of android-e2e: failed") >= 1


def test_a_redelivered_build_is_a_duplicate_and_reports_nothing_new(deployment, fake_revyl):
    failing_second_test(fake_revyl)
    assert post_build(deployment.front).json()["decision"] == "triggered"
    deployment.receiver.wait_for(2, timeout=60)
    assert post_build(deployment.front).json()["decision"] == "duplicate"
    assert deployment.tasks.wait_idle(30), deployment.tasks.pending()
    time.sleep(1.5)
    assert len(deployment.receiver.attempts) == 2


def forge(deployment: Deployment, authorization: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = {"kind": "verdict.poll", "payload": {"check": "0" * 40, "n": 1}, "attempt": 1}
    return requests.post(
        f"{deployment.url}/_relay/task", data=json.dumps(body), headers=headers, timeout=10
    )


def test_a_task_request_without_a_valid_oidc_token_is_refused(deployment, fake_revyl):
    issuer = deployment.issuer
    forged = {
        "no token": None,
        "not a bearer token": "Basic eDp5",
        "not a JWT": "Bearer not-a-token",
        "wrong audience": "Bearer " + issuer.mint("https://elsewhere.example", TASKS_SA),
        "wrong account": "Bearer "
        + issuer.mint(deployment.url, "intruder@demo.iam.gserviceaccount.com"),
        "unverified e-mail": "Bearer "
        + issuer.mint(deployment.url, TASKS_SA, email_verified=False),
        "wrong issuer": "Bearer "
        + issuer.mint(deployment.url, TASKS_SA, issuer="https://evil.example"),
        "expired": "Bearer " + issuer.mint(deployment.url, TASKS_SA, lifetime=-3600),
        "untrusted key": "Bearer "
        + issuer.mint(deployment.url, TASKS_SA, signer=SigningKey.generate()),
        "trusted kid, other key": "Bearer "
        + issuer.mint(deployment.url, TASKS_SA, signer=issuer.impostor()),
    }
    for what, authorization in forged.items():
        answer = forge(deployment, authorization)
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json()["decision"] == "rejected"
        assert "token" in answer.json()["reason"] or "Authorization" in answer.json()["reason"]
    assert fake_revyl.calls_to("/get_test_execution_task") == []
    assert deployment.receiver.attempts == []
    genuine = forge(deployment, "Bearer " + issuer.mint(deployment.url, TASKS_SA))
    assert genuine.status_code == 200, genuine.text  # a valid token for a check nobody has
    assert deployment.receiver.attempts == []
