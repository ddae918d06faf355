"""The answer to a delivery, decided in one place: causes and outcomes in, status and body out.

Every answer the relay gives — an error, an ignored event, a dry run, runs started (all, some,
none), a duplicate, a chat reply — is built here, so the HTTP status, the `decision`, the
`reason` and the headers (`Retry-After`, `Allow`) follow one table (docs/answers.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.errors import Cause, MethodNotAllowed, RelayError
from relay.models import Build, Decision, ErrorItem, Event, Execution, RelayResponse

STATUS: dict[Cause, int] = {
    Cause.BAD_REQUEST: 400,
    Cause.UNAUTHORIZED: 401,
    Cause.UNKNOWN_SOURCE: 404,
    Cause.METHOD_NOT_ALLOWED: 405,
    Cause.TOO_LARGE: 413,
    Cause.UNPROCESSABLE: 422,
    Cause.IN_PROGRESS: 409,
    Cause.UNAVAILABLE: 503,
    Cause.UPSTREAM: 502,
    Cause.REVYL: 502,
    Cause.NOT_STARTED: 502,
    Cause.INTERNAL: 500,
}
# Refused before any work started: the sender's request, not the relay's state, is at fault.
REJECTED = frozenset(
    {
        Cause.BAD_REQUEST,
        Cause.UNAUTHORIZED,
        Cause.UNKNOWN_SOURCE,
        Cause.METHOD_NOT_ALLOWED,
        Cause.TOO_LARGE,
        Cause.UNPROCESSABLE,
    }
)
RETRY_AFTER: dict[Cause, int] = {Cause.IN_PROGRESS: 30, Cause.UNAVAILABLE: 30}


@dataclass
class Answer:
    """An HTTP answer: `body` is what is logged and, unless a source gives its own `reply`
    (Slack's Block Kit), what is sent."""

    status: int
    body: RelayResponse
    headers: dict[str, str] = field(default_factory=dict)
    reply: dict[str, Any] | None = None


def status_for(cause: Cause) -> int:
    return STATUS[cause]


def decision_for(cause: Cause) -> Decision:
    if cause in REJECTED:
        return "rejected"
    return "in_progress" if cause is Cause.IN_PROGRESS else "failed"


def retry_headers(cause: Cause, retry_after: int | None = None) -> dict[str, str]:
    seconds = retry_after or RETRY_AFTER.get(cause)
    return {"Retry-After": str(seconds)} if seconds else {}


def for_error(exc: RelayError) -> Answer:
    headers = retry_headers(exc.cause, exc.retry_after)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    body = RelayResponse(event=exc.event, decision=decision_for(exc.cause), reason=exc.message)
    return Answer(status_for(exc.cause), body, headers)


def internal_error() -> Answer:
    """A bug: the sender learns nothing of it but that it was not their fault."""
    return Answer(500, RelayResponse(decision="failed", reason="internal error"))


def ignored(event: Event, reason: str, build: Build | None = None) -> Answer:
    body = RelayResponse(
        event=event.key, decision="ignored", reason=reason, build=build.summary() if build else None
    )
    return Answer(200, body)


def dry_run(
    event: Event,
    build: Build,
    executions: Sequence[Execution],
    plan: list[dict[str, Any]],
    reason: str,
) -> Answer:
    """Nothing was started. A target that would fail before any Revyl call (its route's plan
    has a problem) is answered as the live relay answers it: a dry run is no false green."""
    failures = [e for e in executions if e.outcome != "planned"]
    planned = [e for e in executions if e.outcome == "planned"]
    decision, status = _decide(planned, failures, False) if failures else ("dry_run", 200)
    reasons = {e.error or e.outcome for e in failures}
    body = RelayResponse(
        event=event.key,
        decision=decision,
        reason=reasons.pop() if not planned and len(reasons) == 1 else reason,
        build=build.summary(),
        executions=list(executions),
        errors=[_error_item(e) for e in failures],
        plan=plan,
    )
    return Answer(status, body)


def task_done(kind: str) -> Answer:
    """A task Cloud Tasks brought back has run (or will run again: its next attempt is
    scheduled): 2xx, so Cloud Tasks does not deliver it again."""
    return Answer(200, RelayResponse(decision="done", reason=f"task {kind} done"))


def chat_reply(body: RelayResponse, message: dict[str, Any]) -> Answer:
    """A chat command's answer: `message` is what the chat shows, `body` what is logged."""
    return Answer(200, body, reply=message)


def finished(
    event: Event,
    build: Build,
    executions: Iterable[Execution],
    *,
    duplicate: bool = False,
    unrecorded: str | None = None,
) -> Answer:
    """What the runs of an event came to. Every target started: 200 `triggered`. None
    started, all for one cause: that cause's status (422 when no route could use the payload,
    503 when a build system was down...). Anything else: 502, `partial` or `failed`.
    `unrecorded` is the reason to give when the event store did not take the outcome."""
    executions = list(executions)
    started = [e for e in executions if e.outcome == "started"]
    failures = [e for e in executions if e.outcome != "started"]
    decision, status = _decide(started, failures, duplicate)
    reasons = {e.error or e.outcome for e in failures}
    reason = reasons.pop() if not started and len(reasons) == 1 else None
    body = RelayResponse(
        event=event.key,
        decision=decision,
        reason=unrecorded or reason,
        build=build_summary(build, executions),
        execution_ids=[e.execution_id for e in started if e.execution_id],
        executions=executions,
        errors=[_error_item(e) for e in failures],
    )
    headers = retry_headers(Cause.UNAVAILABLE) if status == 503 else {}
    return Answer(status, body, headers)


def _decide(
    started: list[Execution], failures: list[Execution], duplicate: bool
) -> tuple[Decision, int]:
    if duplicate:
        return "duplicate", 200
    if not failures:
        return "triggered", 200
    causes = {e.cause or Cause.REVYL for e in failures}
    if not started and len(causes) == 1:
        return "failed", status_for(causes.pop())
    return ("partial" if started else "failed"), 502


def build_summary(build: Build, executions: Iterable[Execution]) -> dict[str, Any]:
    """The build as the answer shows it, with the Revyl build the targets ran on when one."""
    summary = build.summary()
    version_ids = {e.build_version_id for e in executions if e.build_version_id}
    if len(version_ids) == 1 and not summary.get("build_version_id"):
        summary["build_version_id"] = version_ids.pop()
    return summary


def _error_item(execution: Execution) -> ErrorItem:
    return ErrorItem(
        message=execution.error or execution.outcome,
        route=execution.route,
        test_id=execution.test_id,
        workflow_id=execution.workflow_id,
        revyl_status=execution.revyl_status,
    )
