"""The GitHub commit status target, pure: the request, its description, and GitHub's answers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relay.config import SecretRef
from relay.models import Execution
from relay.reports._common import HttpAnswer
from relay.reports.base import Refused, Skipped
from relay.reports.github_status import (
    MAX_DESCRIPTION,
    GitHubStatusSettings,
    StatusRequest,
    description,
    read_answer,
    status_request,
)
from relay.tasks import RetryLater
from relay.verdicts.check import Check, Run, new_check

T1, T2 = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"
W1 = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
SHA = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
BUILD = {"version": "2.4.0", "build_number": "187", "commit": SHA, "branch": "main"}
NOW = 1_780_000_000.0


def settings(**fields) -> GitHubStatusSettings:
    return GitHubStatusSettings(type="github-status", token=SecretRef(env="GH"), **fields)


def report(test: str) -> str:
    return f"https://app.revyl.ai/tests/report?taskId=x-{test[:4]}"


def check(*targets: str, build=None, workflow: bool = False) -> Check:
    executions = [
        Execution(route="android-e2e", test_id=t, execution_id=f"x-{t[:4]}", report_url=report(t))
        for t in targets
    ]
    if workflow:
        url = "https://app.revyl.ai/workflows/report?taskId=wf"
        executions.append(
            Execution(route="android-e2e", workflow_id=W1, execution_id="wf", report_url=url)
        )
    return new_check(
        event_key="eas:b:finished",
        route="android-e2e",
        build=BUILD if build is None else build,
        executions=executions,
        report_to=["gh"],
        now=NOW,
        give_up_seconds=60,
    )


def settle(check: Check, verdict: str, **outcomes: tuple[str, str | None]) -> Check:
    runs = dict(check.runs)
    for key, run in runs.items():
        outcome, error = outcomes.get(run.target_id, ("passed", None))
        runs[key] = run.model_copy(update={"outcome": outcome, "error": error})
    return check.model_copy(update={"verdict": verdict, "runs": runs})


def test_the_pending_status_when_the_check_starts():
    request = status_request(settings(repository="acme/shopper"), check(T1, T2), "started")
    assert isinstance(request, StatusRequest)
    assert request.path == f"/repos/acme/shopper/statuses/{SHA}"
    assert request.body == {
        "state": "pending",
        "context": "revyl/android-e2e",
        "description": "2 tests running on 2.4.0 (187)",
    }  # two tests and no workflow: no single report to link


def test_the_pending_status_links_the_workflow_or_the_only_run():
    with_workflow = status_request(settings(repository="a/b"), check(T1, workflow=True), "started")
    assert isinstance(with_workflow, StatusRequest)
    assert with_workflow.body["target_url"].endswith("taskId=wf")
    assert with_workflow.body["description"] == "1 test and 1 workflow running on 2.4.0 (187)"
    alone = status_request(settings(repository="a/b"), check(T1), "started")
    assert isinstance(alone, StatusRequest)
    assert alone.body["target_url"] == report(T1)


def test_the_verdict_states_and_the_first_failing_runs_link():
    failed = settle(check(T1, T2), "failed", **{T2: ("failed", "login-flow failed")})
    request = status_request(settings(repository="acme/shopper"), failed, "finished")
    assert isinstance(request, StatusRequest)
    assert request.body["state"] == "failure"
    assert request.body["target_url"] == report(T2)
    assert request.body["description"] == "1 of 2 passed — test 1a9e7d2b failed: login-flow failed"
    passed = status_request(settings(repository="a/b"), settle(check(T1), "passed"), "finished")
    assert isinstance(passed, StatusRequest)
    assert (passed.body["state"], passed.body["target_url"]) == ("success", report(T1))
    errored = settle(check(T1, T2), "error", **{T1: ("cancelled", None)})
    request = status_request(settings(repository="a/b"), errored, "finished")
    assert isinstance(request, StatusRequest)
    assert (request.body["state"], request.body["target_url"]) == ("error", report(T1))


def test_the_description_is_at_most_140_characters():
    long_error = "the login screen never appeared " * 20
    failed = settle(check(T1, T2), "failed", **{T2: ("failed", long_error)})
    text = description(failed, "finished")
    assert len(text) == MAX_DESCRIPTION
    assert text.endswith("…")
    assert "\n" not in description(
        settle(check(T1), "failed", **{T1: ("failed", "a\nb")}), "finished"
    )


def test_the_repository_comes_from_the_target_else_from_the_build():
    from_build = status_request(
        settings(), check(T1, build={**BUILD, "repository": "o/r"}), "started"
    )
    assert isinstance(from_build, StatusRequest)
    assert from_build.repository == "o/r"
    chosen = status_request(
        settings(repository="acme/shopper"),
        check(T1, build={**BUILD, "repository": "o/r"}),
        "started",
    )
    assert isinstance(chosen, StatusRequest)
    assert chosen.repository == "acme/shopper"


@pytest.mark.parametrize(
    ("build", "target", "says"),
    [
        ({"version": "1"}, {"repository": "a/b"}, "no commit"),
        (BUILD, {}, "set `repository: owner/name`"),
        ({**BUILD, "commit": "../../orgs/x"}, {"repository": "a/b"}, "not a commit SHA"),
        ({**BUILD, "repository": "a/b/../c"}, {}, "not owner/name"),
    ],
)
def test_nothing_is_posted_without_a_commit_or_a_repository(build, target, says):
    skipped = status_request(settings(**target), check(T1, build=build), "started")
    assert isinstance(skipped, Skipped)
    assert says in skipped.reason


def test_the_context_is_a_template_over_the_route_and_the_build():
    chosen = settings(repository="a/b", context="revyl/{route} ({platform}, {branch})")
    request = status_request(chosen, check(T1), "started")
    assert isinstance(request, StatusRequest)
    assert request.body["context"] == "revyl/android-e2e (, main)"
    with pytest.raises(ValidationError, match="unknown fields"):
        settings(context="revyl/{secret}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository", "acme"),
        ("repository", "acme/shop/per"),
        ("api_url", "http://github.example.com/api/v3"),
        ("api_url", "ftp://api.github.com"),
    ],
)
def test_settings_refuse_what_cannot_be_right(field, value):
    with pytest.raises(ValidationError):
        settings(**{field: value})


REQUEST = StatusRequest("acme/shopper", SHA, {"state": "pending", "context": "revyl/r"})


def answer(status: int, message: str = "", **headers: str) -> HttpAnswer:
    body = f'{{"message": "{message}"}}'.encode() if message else b""
    return HttpAnswer(status, headers, body)


def read(status: int, message: str = "", **headers: str):
    return read_answer(
        answer(status, message, **headers), NOW, setting="reports.gh", request=REQUEST
    )


def test_201_is_posted():
    assert read(201).detail == f"pending on acme/shopper@{SHA[:12]} (revyl/r)"


@pytest.mark.parametrize(
    ("status", "message", "says"),
    [
        (401, "Bad credentials", "check reports.gh.token"),
        (403, "Resource not accessible by personal access token", '"Commit statuses: write"'),
        (404, "Not Found", "check reports.gh.repository"),
        (422, f"No commit found for SHA: {SHA}", "is the commit pushed"),
        (301, "Moved Permanently", "check reports.gh.api_url"),
    ],
)
def test_a_refusal_says_what_to_fix(status, message, says):
    with pytest.raises(Refused) as refused:
        read(status, message)
    assert says in refused.value.message
    assert str(status) in refused.value.message


@pytest.mark.parametrize(
    ("status", "headers", "after"),
    [
        (500, {}, None),
        (502, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "30"}, 30.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 90)}, 90.0),
        (429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 99999)}, 3600.0),
    ],
)
def test_5xx_and_rate_limits_are_retried_when_github_says(status, headers, after):
    with pytest.raises(RetryLater) as retry:
        read(status, "API rate limit exceeded", **headers)
    assert retry.value.after == after


def test_a_secondary_rate_limit_is_retried_after_a_minute():
    with pytest.raises(RetryLater) as retry:
        read(403, "You have exceeded a secondary rate limit")
    assert retry.value.after == 60.0


def test_a_run_list_without_reports_links_nothing():
    bare = check(T1).model_copy(update={"runs": {"k": Run(test_id=T1, execution_id="x")}})
    request = status_request(settings(repository="a/b"), bare, "started")
    assert isinstance(request, StatusRequest)
    assert "target_url" not in request.body
