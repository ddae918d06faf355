"""A check, pure: one route's runs for one event, followed to one verdict.

The verdict rule: `passed` when every run passed; `failed` when any run failed (or timed out)
in Revyl; `error` when a run was cancelled or never started, or no verdict came by the give-up
time (a run still running, or Revyl's status unreadable until then). A failure is the more
useful fact, so `failed` wins over `error` when both are seen. Each run's own pass rule is
Revyl's (`relay.revyl.sansio.read_run_state`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

from relay.models import Execution
from relay.revyl.sansio import RunState

Verdict = Literal["passed", "failed", "error"]
RunOutcome = Literal["running", "passed", "failed", "cancelled", "not_started"]
Phase = Literal["started", "finished"]
PHASES: tuple[Phase, ...] = ("started", "finished")
MAX_ERROR = 500  # characters of Revyl's error message kept per run


class Run(BaseModel):
    """One run of a check: a test or workflow execution, and what Revyl last said of it."""

    test_id: str | None = None
    workflow_id: str | None = None
    execution_id: str | None = None
    report_url: str | None = None
    status: str | None = None  # Revyl's own last status word ("not_started" if it never did)
    outcome: RunOutcome = "running"
    error: str | None = None

    @property
    def kind(self) -> Literal["test", "workflow"]:
        return "test" if self.test_id else "workflow"

    @property
    def target_id(self) -> str:
        return self.test_id or self.workflow_id or ""

    @property
    def finished(self) -> bool:
        return self.outcome != "running"

    @property
    def passed(self) -> bool | None:
        """True or False once Revyl says; None while running, or when it never ran."""
        if self.outcome in ("passed", "failed"):
            return self.outcome == "passed"
        return None


class Check(BaseModel):
    """What is followed for one route of one event, and what became of it."""

    id: str
    event: str
    route: str
    build: dict[str, Any]
    runs: dict[str, Run]  # by target key (route/test/<id>)
    report_to: list[str]
    created_at: float
    give_up_at: float
    origin: dict[str, Any] | None = None  # where a chat command that started it asked from
    polls: int = 0
    verdict: Verdict | None = None
    finished_at: float | None = None

    @property
    def started_runs(self) -> list[Run]:
        return [run for run in self.runs.values() if run.execution_id]

    def unfinished(self) -> dict[str, Run]:
        return {key: run for key, run in self.runs.items() if not run.finished}


def check_id(event_key: str, route: str) -> str:
    """A stable id for (event, route): a name Cloud Tasks and Firestore both accept."""
    digest = hashlib.sha256(f"{event_key}\0{route}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:40]


def run_of(execution: Execution) -> Run:
    """A started execution is a run to follow; any other is a run that never started."""
    if execution.outcome == "started" and execution.execution_id:
        return Run(
            test_id=execution.test_id,
            workflow_id=execution.workflow_id,
            execution_id=execution.execution_id,
            report_url=execution.report_url,
            status=execution.status,
        )
    return Run(
        test_id=execution.test_id,
        workflow_id=execution.workflow_id,
        status="not_started",
        outcome="not_started",
        error=_cap(execution.error or f"the relay could not start it ({execution.outcome})"),
    )


def new_check(
    *,
    event_key: str,
    route: str,
    build: Mapping[str, Any],
    executions: Iterable[Execution],
    report_to: Iterable[str],
    now: float,
    give_up_seconds: float,
    origin: Mapping[str, Any] | None = None,
) -> Check:
    return Check(
        id=check_id(event_key, route),
        event=event_key,
        route=route,
        build=dict(build),
        runs={e.target: run_of(e) for e in executions},
        report_to=list(report_to),
        created_at=now,
        give_up_at=now + give_up_seconds,
        origin=dict(origin) if origin else None,
    )


def merge_runs(stored: Mapping[str, Run], new: Mapping[str, Run]) -> dict[str, Run]:
    """A redelivery that started what an earlier one could not adds its runs; a run already
    followed is never replaced by a later failure to start it."""
    merged = dict(stored)
    for key, run in new.items():
        old = merged.get(key)
        if old is None or (old.outcome == "not_started" and run.execution_id):
            merged[key] = run
    return merged


def observed(run: Run, state: RunState) -> Run:
    """The run as Revyl's status answer shows it now."""
    outcome: RunOutcome = state.outcome
    return run.model_copy(
        update={
            "status": state.status or run.status,
            "outcome": outcome,
            "error": _cap(state.error),
        }
    )


def unreadable(run: Run, reason: str) -> Run:
    """Revyl's status could not be read this time: the run keeps its state, with the reason."""
    return run.model_copy(update={"error": _cap(f"status unreadable: {reason}")})


def verdict_of(runs: Iterable[Run], *, given_up: bool) -> Verdict | None:
    """The check's verdict, or None while a run is still running (and it is not given up)."""
    runs = list(runs)
    finished = all(run.finished for run in runs)
    if any(run.outcome == "failed" for run in runs) and (given_up or finished):
        return "failed"
    if not finished:
        return "error" if given_up else None
    if any(run.outcome in ("cancelled", "not_started") for run in runs) or not runs:
        return "error"
    return "passed"


def given_up(runs: Mapping[str, Run], verdict: Verdict) -> dict[str, Run]:
    """At the give-up time, runs still running say so in their error."""
    if verdict != "error":
        return dict(runs)
    return {
        key: run
        if run.finished
        else run.model_copy(update={"error": run.error or "no verdict by give_up_seconds"})
        for key, run in runs.items()
    }


def summary(check: Check) -> str:
    """One line a person reads: "2 of 3 passed — test 1a9e7d2b failed: login failed"."""
    runs = list(check.runs.values())
    passed = sum(run.outcome == "passed" for run in runs)
    line = f"{passed} of {len(runs)} passed"
    bad = [run for run in runs if run.outcome not in ("passed",)]
    if check.verdict and bad:
        first = bad[0]
        line += f" — {first.kind} {first.target_id[:8]} {describe_outcome(first)}"
        if len(bad) > 1:
            line += f" (+{len(bad) - 1} more)"
    return line


def describe_outcome(run: Run) -> str:
    words = {
        "failed": "failed",
        "cancelled": "was cancelled",
        "not_started": "did not start",
        "running": "had no verdict",
        "passed": "passed",
    }
    return words[run.outcome]


def _cap(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
