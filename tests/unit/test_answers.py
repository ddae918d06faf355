"""The answer table: every cause and every outcome to its status, decision and headers."""

from __future__ import annotations

import pytest

from relay import answers
from relay.errors import (
    BadRequest,
    Cause,
    InProgress,
    MethodNotAllowed,
    PayloadTooLarge,
    RelayError,
    SecretUnavailable,
    Unauthorized,
    UnknownSource,
    UnprocessableBuild,
    UpstreamError,
)
from relay.models import Build, Event, Execution

EVENT = Event("eas:b1:finished")
BUILD = Build(source="eas", system="expo-eas", version="2.4.0")


@pytest.mark.parametrize(
    ("error", "status", "decision", "headers"),
    [
        (BadRequest("x"), 400, "rejected", {}),
        (Unauthorized(), 401, "rejected", {}),
        (UnknownSource("x"), 404, "rejected", {}),
        (MethodNotAllowed("x", allow="GET"), 405, "rejected", {"Allow": "GET"}),
        (PayloadTooLarge("x"), 413, "rejected", {}),
        (UnprocessableBuild("x"), 422, "rejected", {}),
        (InProgress("x"), 409, "in_progress", {"Retry-After": "30"}),
        (SecretUnavailable("x"), 503, "failed", {"Retry-After": "30"}),
        (SecretUnavailable("x", retry_after=5), 503, "failed", {"Retry-After": "5"}),
        (UpstreamError("x"), 502, "failed", {}),
        (RelayError("x"), 500, "failed", {}),
    ],
)
def test_an_error_answers_by_its_cause(error, status, decision, headers):
    answer = answers.for_error(error)
    assert (answer.status, answer.body.decision, answer.headers) == (status, decision, headers)
    assert answer.body.reason == error.message


def test_every_cause_has_a_status():
    assert set(answers.STATUS) == set(Cause)


def started(test_id: str, execution_id: str = "x1") -> Execution:
    return Execution(route="r", test_id=test_id, execution_id=execution_id, build_version_id="v1")


def failed(test_id: str, cause: Cause, error: str = "no", outcome: str = "failed") -> Execution:
    return Execution(route="r", test_id=test_id, outcome=outcome, error=error, cause=cause)  # type: ignore[arg-type]


UNPROCESSABLE = failed("t1", Cause.UNPROCESSABLE, "the build has no build_number")


@pytest.mark.parametrize(
    ("executions", "duplicate", "status", "decision", "reason", "headers"),
    [
        ([started("t1"), started("t2", "x2")], False, 200, "triggered", None, {}),
        ([started("t1")], True, 200, "duplicate", None, {}),
        ([failed("t1", Cause.REVYL), started("t2")], True, 200, "duplicate", None, {}),
        ([UNPROCESSABLE, UNPROCESSABLE], False, 422, "failed", UNPROCESSABLE.error, {}),
        (
            [failed("t1", Cause.UNAVAILABLE, "GitHub down")],
            False,
            503,
            "failed",
            "GitHub down",
            {"Retry-After": "30"},
        ),
        ([failed("t1", Cause.UPSTREAM, "refused")], False, 502, "failed", "refused", {}),
        ([failed("t1", Cause.REVYL, "402")], False, 502, "failed", "402", {}),
        ([failed("t1", Cause.NOT_STARTED, "lease")], False, 502, "failed", "lease", {}),
        (
            [failed("t1", Cause.REVYL, "a"), failed("t2", Cause.REVYL, "b")],
            False,
            502,
            "failed",
            None,
            {},
        ),
        ([UNPROCESSABLE, failed("t2", Cause.REVYL, "no")], False, 502, "failed", None, {}),
        ([started("t1"), UNPROCESSABLE], False, 502, "partial", None, {}),
        (
            [started("t1"), failed("t2", Cause.REVYL, "?", "unknown")],
            False,
            502,
            "partial",
            None,
            {},
        ),
        ([failed("t1", None, "old record")], False, 502, "failed", "old record", {}),  # type: ignore[arg-type]
    ],
)
def test_what_the_runs_came_to(executions, duplicate, status, decision, reason, headers):
    answer = answers.finished(EVENT, BUILD, executions, duplicate=duplicate)
    body = answer.body
    assert (answer.status, body.decision, body.reason, answer.headers) == (
        status,
        decision,
        reason,
        headers,
    )
    assert body.execution_ids == [e.execution_id for e in executions if e.outcome == "started"]
    assert len(body.errors) == sum(e.outcome != "started" for e in executions)


def test_the_answer_names_the_revyl_build_the_targets_ran_on():
    body = answers.finished(EVENT, BUILD, [started("t1"), started("t2", "x2")]).body
    assert body.build["build_version_id"] == "v1"


def test_an_outcome_the_store_did_not_take_says_so():
    answer = answers.finished(EVENT, BUILD, [started("t1")], unrecorded="not recorded")
    assert (answer.status, answer.body.reason) == (200, "not recorded")


def test_ignored_and_dry_run_are_200s_that_start_nothing():
    ignored = answers.ignored(EVENT, "the build errored")
    assert (ignored.status, ignored.body.decision, ignored.body.reason) == (
        200,
        "ignored",
        "the build errored",
    )
    dry = answers.dry_run(EVENT, BUILD, [], [], "no token")
    assert (dry.status, dry.body.decision, dry.body.plan) == (200, "dry_run", [])


def test_internal_errors_say_nothing_of_themselves():
    answer = answers.internal_error()
    assert (answer.status, answer.body.reason) == (500, "internal error")
