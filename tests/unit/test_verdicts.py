"""The check and its verdict rule: pure."""

from __future__ import annotations

import re

import pytest

from relay.models import Execution
from relay.revyl.sansio import RunState
from relay.verdicts.check import (
    Run,
    check_id,
    given_up,
    merge_runs,
    new_check,
    observed,
    run_of,
    summary,
    verdict_of,
)


def run(outcome: str, test_id: str = "t1", **fields) -> Run:
    return Run(test_id=test_id, execution_id=f"x-{test_id}", outcome=outcome, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcomes", "over", "verdict"),
    [
        (["passed", "passed"], False, "passed"),
        (["passed", "running"], False, None),
        (["failed", "running"], False, None),  # the verdict waits for every run
        (["failed", "passed"], False, "failed"),
        (["failed", "cancelled"], False, "failed"),  # a failure is the more useful fact
        (["cancelled", "passed"], False, "error"),
        (["not_started", "passed"], False, "error"),
        (["passed", "running"], True, "error"),  # given up
        (["failed", "running"], True, "failed"),
        (["passed", "passed"], True, "passed"),
        ([], False, "error"),
    ],
)
def test_the_verdict_rule(outcomes, over, verdict):
    runs = [run(o, f"t{i}") for i, o in enumerate(outcomes)]
    assert verdict_of(runs, given_up=over) == verdict


def started(test_id: str) -> Execution:
    return Execution(route="r", test_id=test_id, execution_id=f"x-{test_id}", report_url="u")


def test_an_execution_that_never_started_is_a_run_that_never_will():
    failed = Execution(route="r", test_id="t2", outcome="failed", error="402 no credits")
    assert run_of(started("t1")).outcome == "running"
    never = run_of(failed)
    assert (never.outcome, never.status, never.error, never.passed) == (
        "not_started",
        "not_started",
        "402 no credits",
        None,
    )


def test_a_redelivery_adds_what_it_started_and_never_loses_a_followed_run():
    first = {"r/test/t1": run_of(started("t1")), "r/test/t2": run("not_started", "t2")}
    second = {"r/test/t2": run_of(started("t2")), "r/test/t1": run("not_started", "t1")}
    merged = merge_runs(first, second)
    assert merged["r/test/t1"].execution_id == "x-t1"
    assert merged["r/test/t2"].execution_id == "x-t2"


def test_a_status_answer_moves_the_run():
    now = observed(run("running"), RunState("failed", "failed", "login failed"))
    assert (now.status, now.outcome, now.error, now.passed) == (
        "failed",
        "failed",
        "login failed",
        False,
    )


def test_runs_still_running_at_give_up_say_why():
    runs = given_up({"a": run("running"), "b": run("passed", "t2")}, "error")
    assert runs["a"].error == "no verdict by give_up_seconds"
    assert runs["b"].error is None


def test_a_check_id_is_stable_and_a_valid_task_and_document_name():
    ident = check_id("eas:x\ud800:finished", "route/with spaces")
    assert ident == check_id("eas:x\ud800:finished", "route/with spaces")
    assert ident != check_id("eas:x:finished", "route/with spaces")
    assert re.fullmatch(r"[0-9a-f]{40}", ident)


def test_the_summary_a_person_reads():
    check = new_check(
        event_key="e",
        route="r",
        build={},
        executions=[started("0f8f6c1a-aaaa"), started("1a9e7d2b-bbbb"), started("2c")],
        report_to=[],
        now=0,
        give_up_seconds=10,
    )
    runs = dict(check.runs)
    keys = list(runs)
    runs[keys[1]] = run("failed", "1a9e7d2b-bbbb")
    runs[keys[0]] = run("passed", "0f8f6c1a-aaaa")
    runs[keys[2]] = run("passed", "2c")
    settled = check.model_copy(update={"runs": runs, "verdict": "failed"})
    assert summary(settled) == "2 of 3 passed — test 1a9e7d2b failed"
