"""Following runs to their verdict and reporting it: the engine behind `verdicts:`.

After a delivery starts a route's runs, and the route names report targets (or a chat command
started them: the verdict goes back where it asked from), the route's runs become a *check*,
followed by three kinds of task (each idempotent, each named so that a step scheduled twice
runs once, whichever instance schedules it):

- `verdict.start`: open the check in the check store; schedule its `started` reports and its
  first poll (the only task created on the webhook's path);
- `verdict.poll` (every `poll_seconds`): read each unfinished run's status from Revyl; once
  every run is finished, or at `give_up_seconds`, settle the verdict (the first settle wins)
  and schedule the `finished` reports, else schedule the next poll;
- `verdict.report`: deliver one message (a target, a phase) once: claimed in the check store
  before it is sent, retried with backoff on 5xx, 429 and timeouts, final on a refusal. A
  phase of several calls (Slack: the message, then a thread reply) claims each on its own.

Nothing here knows how tasks travel (in-process threads, Cloud Tasks) or how a target
delivers (`relay.reports`): the follower sequences, the store remembers.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from relay.answers import build_summary
from relay.concurrency import concurrently
from relay.config import RelayConfig, VerdictSettings
from relay.models import Build, Event, Execution
from relay.reports.base import Refused, ReportTarget, Sent, Skipped, origin_target_name
from relay.revyl.client import RevylClient
from relay.revyl.sansio import RevylError, read_run_state
from relay.routing import RoutePlan
from relay.secrets import SecretReader
from relay.stores.checks import CheckStore
from relay.tasks import RetryLater, Task, TaskQueue
from relay.verdicts.check import (
    Check,
    Phase,
    Run,
    check_id,
    given_up,
    new_check,
    observed,
    summary,
    unreadable,
    verdict_of,
)

log = logging.getLogger("relay")
T = TypeVar("T")

START, POLL, REPORT = "verdict.start", "verdict.poll", "verdict.report"
REPORT_DELAYS = (5.0, 15.0, 60.0, 300.0, 900.0)  # between a report's attempts (6 in all)
WAIT_FOR_STARTED = 2.0  # a `finished` report waits this long, at most WAITS times, for its
WAITS = 10  # `started` one (a Slack message must exist before it is updated)


class Follower:
    def __init__(
        self,
        config: RelayConfig,
        *,
        revyl: RevylClient,
        secrets: SecretReader,
        checks: CheckStore,
        tasks: TaskQueue,
        targets: Mapping[str, ReportTarget],
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert config.verdicts is not None
        self.settings: VerdictSettings = config.verdicts
        self.revyl_settings = config.revyl
        self.revyl = revyl
        self.secrets = secrets
        self.checks = checks
        self.tasks = tasks
        self.targets = dict(targets)
        self.clock = clock
        tasks.register(START, self.start)
        tasks.register(POLL, self.poll)
        tasks.register(REPORT, self.report)

    # on the webhook's path: one task per route that reports

    def after_start(
        self, event: Event, build: Build, plans: list[RoutePlan], executions: list[Execution]
    ) -> None:
        origin = event.extra.get("origin")
        for plan in plans:
            route = plan.route
            runs = [e for e in executions if e.route == route.name]
            report_to = [*route.report, *self.origin_targets(origin)]
            if not report_to or not any(e.outcome == "started" for e in runs):
                continue  # nothing to follow: the answer already told the sender
            payload = {
                "event": event.key,
                "route": route.name,
                "report_to": report_to,
                "build": build_summary(build, runs),
                "executions": [e.model_dump(mode="json", exclude_none=True) for e in runs],
                "origin": origin,
            }
            ident = check_id(event.key, route.name)
            fields = {"event": event.key, "route": route.name, "check": ident}
            try:
                self.tasks.schedule(Task(START, payload, name=f"{ident}-start"))
            except Exception as exc:
                log.error(
                    f"the runs of {route.name} will not be followed: the task queue refused "
                    "the check (a redelivery of the webhook schedules it again)",
                    extra={**fields, "reason": type(exc).__name__},
                )

    def origin_targets(self, origin: Any) -> list[str]:
        """The implicit target answering where a chat command asked from, when there is one."""
        if not isinstance(origin, Mapping):
            return []
        name = origin_target_name(str(origin.get("source")))
        return [name] if name in self.targets else []

    # the tasks

    def start(self, payload: Mapping[str, Any], attempt: int) -> None:
        check = new_check(
            event_key=payload["event"],
            route=payload["route"],
            build=payload.get("build") or {},
            executions=[Execution.model_validate(e) for e in payload.get("executions") or []],
            report_to=payload.get("report_to") or [],
            now=self.clock(),
            give_up_seconds=self.settings.give_up_seconds,
            origin=payload.get("origin"),
        )
        stored, new = stored_or_retry(lambda: self.checks.open(check))
        if stored.verdict is not None:
            self.schedule_reports(stored, "finished")
            return
        if new:
            log.info(
                f"following {len(stored.started_runs)} runs of {stored.route}",
                extra=check_fields(stored),
            )
        self.schedule_reports(stored, "started")
        if new or stored.polls == 0:
            self.schedule_poll(stored, 1)

    def poll(self, payload: Mapping[str, Any], attempt: int) -> None:
        number = int(payload["n"])
        check = stored_or_retry(lambda: self.checks.get(str(payload["check"])))
        if check is None:
            log.error("poll of a check that is not stored", extra={"check": payload["check"]})
            return
        if check.verdict is not None:  # settled by a duplicate of this poll, or an earlier run
            self.schedule_reports(check, "finished")
            return
        now = self.clock()
        seen = self.read_runs(check)
        runs = {**check.runs, **seen}
        over = now >= check.give_up_at
        verdict = verdict_of(runs.values(), given_up=over)
        if verdict is None:
            stored_or_retry(lambda: self.checks.observe(check.id, seen, number))
            self.schedule_poll(check, number + 1)
            return
        final = given_up(runs, verdict)
        settled = stored_or_retry(lambda: self.checks.settle(check.id, verdict, final, now))
        log.info(
            f"verdict of {settled.route}: {settled.verdict} ({summary(settled)})",
            extra={
                **check_fields(settled),
                "verdict": settled.verdict,
                "polls": number,
                "runs": {key: run.outcome for key, run in settled.runs.items()},
            },
        )
        self.schedule_reports(settled, "finished")

    def report(self, payload: Mapping[str, Any], attempt: int) -> None:
        ident, name, phase = str(payload["check"]), str(payload["target"]), payload["phase"]
        check = stored_or_retry(lambda: self.checks.get(ident))
        target = self.targets.get(name)
        if check is None or target is None:
            log.error(
                "report of an unknown check or target",
                extra={"check": ident, "target": name},
            )
            return
        fields = {**check_fields(check), "target": name, "phase": phase, "attempt": attempt}
        earlier: Mapping[str, Any] = {}
        skipped_before = None
        if phase == "finished":
            first = stored_or_retry(lambda: self.checks.report(ident, f"{name}:started"))
            waits = int(payload.get("waits", 0))
            if (first is None or first.kind == "busy") and waits < WAITS:
                wait = {**payload, "waits": waits + 1}
                waiting = f"{report_name(check, name, phase)}-w{waits + 1}"
                self.tasks.schedule(Task(REPORT, wait, waiting, WAIT_FOR_STARTED))
                return
            earlier = first.data if first is not None and first.state == "sent" else {}
            if first is not None and first.state == "skipped":
                skipped_before = first.data.get("reason")
        self.deliver(check, target, phase, earlier, attempt, fields, skipped_before)

    def deliver(
        self,
        check: Check,
        target: ReportTarget,
        phase: Phase,
        earlier: Mapping[str, Any],
        attempt: int,
        fields: dict[str, Any],
        skipped_before: str | None = None,
    ) -> None:
        """The phase's message, then each further step of it (a thread reply under it): each
        claimed and recorded on its own, so that a retry repeats only the step that failed."""
        key = f"{target.name}:{phase}"

        def first() -> Sent | Skipped:
            return target.report(phase, check, earlier)

        left = self.deliver_once(check, target, key, first, attempt, fields, skipped_before)
        for step in target.steps_after(phase, check):
            if left is None:  # not sent (skipped, refused, given up): nothing to follow it
                return
            so_far = {**earlier, **left}

            def then(step: str = step, so_far: Mapping[str, Any] = so_far) -> Sent | Skipped:
                return target.report_step(step, check, so_far)

            left = self.deliver_once(
                check, target, f"{key}:{step}", then, attempt, {**fields, "step": step}
            )

    def deliver_once(
        self,
        check: Check,
        target: ReportTarget,
        key: str,
        send: Callable[[], Sent | Skipped],
        attempt: int,
        fields: dict[str, Any],
        skipped_before: str | None = None,
    ) -> Mapping[str, Any] | None:
        """One attempt at one message, claimed first so that it is sent once: what it left
        when it is (or was) sent, else None. A skip for the reason the `started` phase was
        skipped for is not logged again."""
        claim_id = uuid.uuid4().hex
        claim = stored_or_retry(
            lambda: self.checks.claim_report(check.id, key, claim_id, self.clock())
        )
        if claim.kind == "done":
            return claim.data if claim.state == "sent" else None
        if claim.kind == "busy":
            raise RetryLater("another delivery of this report is in flight", after=5.0)

        def end(state: Any, data: Mapping[str, Any] | None = None) -> None:
            stored_or_retry(
                lambda: self.checks.end_report(
                    check.id, key, claim_id, state, data or {}, self.clock()
                )
            )

        try:
            outcome = send()
        except RetryLater as failed:
            stored_or_retry(lambda: self.checks.release_report(check.id, key, claim_id))
            if attempt > len(REPORT_DELAYS):
                end("gave_up")
                log.error(
                    f"report to {target.name} NOT delivered: {attempt} attempts failed",
                    extra={**fields, "reason": failed.reason},
                )
                return None
            delay = failed.after if failed.after is not None else REPORT_DELAYS[attempt - 1]
            log.warning(
                f"report to {target.name} failed; retrying in {delay:g} s",
                extra={**fields, "reason": failed.reason},
            )
            raise RetryLater(failed.reason, delay) from None
        except Refused as refused:
            end("refused")
            log.error(
                f"report to {target.name} refused: {refused.message}",
                extra={**fields, "reason": refused.message},
            )
            return None
        except Exception:
            stored_or_retry(lambda: self.checks.release_report(check.id, key, claim_id))
            raise
        if isinstance(outcome, Sent):
            end("sent", outcome.data)
            what = "check." + key.split(":", 1)[1].replace(":", ".")
            log.info(
                f"report to {target.name} delivered: {what}",
                extra={**fields, "detail": outcome.detail},
            )
            return outcome.data
        end("skipped", {"reason": outcome.reason})
        level = logging.DEBUG if outcome.reason == skipped_before else logging.INFO
        log.log(level, f"report to {target.name} skipped: {outcome.reason}", extra=fields)
        return None

    # the steps

    def read_runs(self, check: Check) -> dict[str, Run]:
        """What Revyl says now of each run still running (a read that fails keeps the run's
        state, with the reason)."""
        waiting = [(key, run) for key, run in check.unfinished().items() if run.execution_id]
        if not waiting:
            return {}
        assert self.revyl_settings.token is not None
        try:
            token = self.secrets.read(self.revyl_settings.token)
        except Exception as exc:
            return {
                key: unreadable(run, f"the Revyl token ({type(exc).__name__})")
                for key, run in waiting
            }

        def read(item: tuple[str, Run]) -> tuple[str, Run]:
            key, run = item
            deadline = time.monotonic() + self.revyl_settings.retry_deadline
            try:
                if run.kind == "test":
                    data = self.revyl.execution_status(token, deadline, run.execution_id or "")
                else:
                    data = self.revyl.workflow_status(token, deadline, run.execution_id or "")
            except RevylError as exc:
                return key, unreadable(run, exc.message)
            return key, observed(run, read_run_state(run.kind, data))

        return dict(concurrently(read, waiting, self.revyl_settings.concurrency))

    def schedule_poll(self, check: Check, number: int) -> None:
        delay = max(0.0, min(self.settings.poll_seconds, check.give_up_at - self.clock()))
        self.tasks.schedule(
            Task(POLL, {"check": check.id, "n": number}, f"{check.id}-p{number}", delay)
        )

    def schedule_reports(self, check: Check, phase: Phase) -> None:
        for name in check.report_to:
            payload = {"check": check.id, "target": name, "phase": phase}
            self.tasks.schedule(Task(REPORT, payload, report_name(check, name, phase)))


def report_name(check: Check, target: str, phase: Phase) -> str:
    digest = hashlib.sha256(target.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{check.id}-{digest}-{phase}"


def check_fields(check: Check) -> dict[str, Any]:
    return {"event": check.event, "route": check.route, "check": check.id}


def stored_or_retry(call: Callable[[], T]) -> T:
    """A check store call; the store being unreachable is a reason to run the task later."""
    try:
        return call()
    except RetryLater:
        raise
    except Exception as exc:
        raise RetryLater(f"the check store is unavailable ({type(exc).__name__})") from None
