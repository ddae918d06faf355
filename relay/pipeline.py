"""The relay, step by step: delivery → verified → event → routes → builds resolved → runs started.

`Relay.handle` is the whole path for one webhook. The pure steps live elsewhere (sources,
`routing`, `revyl.sansio`, `answers`); this module sequences them and owns the I/O ordering
rules: nothing is started before the event is claimed, and every start is recorded as it
happens. What a source's events do besides (chat-ops commands) is a listener registered by
`relay.wiring`; work after the answer goes to the `after_start` hooks.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from relay import answers
from relay.answers import Answer
from relay.concurrency import OnceEach, concurrently
from relay.config import RelayConfig, Route
from relay.errors import Cause, InProgress, RelayError, StoreUnavailable, UnknownSource
from relay.models import Artifact, Build, Event, Execution
from relay.revyl import sansio
from relay.revyl.client import RevylClient
from relay.revyl.sansio import MaybeStarted, RevylError
from relay.routing import RoutePlan, Target, plan_event
from relay.secrets import SecretReader
from relay.sources import Delivery, Source, build_source
from relay.stores import Claim, EventStore

log = logging.getLogger("relay")

UNRECORDED = (
    "the event store did not take this outcome: this instance keeps it and writes it when the "
    "store answers again; until then a redelivery to another instance may answer 409 or 503"
)

Listener = Callable[[Event], Answer]
"""Answers a source's events in its own way (chat-ops commands), instead of routing them."""


@dataclass(frozen=True)
class Attempt:
    """One delivery's attempt at an event's runs: what every step after the claim needs."""

    source: Source  # mints artifact links right before Revyl fetches them
    event: Event
    build: Build
    token: str
    stop_at: float  # time.monotonic(): from then on nothing is started (the claim's lease ends)
    previous: Mapping[str, Execution] = field(default_factory=dict)  # recorded by earlier ones

    def deadline(self, budget: float) -> float:
        """When a call's retries must end: after its own budget, and never past `stop_at`."""
        return min(time.monotonic() + budget, self.stop_at)


@dataclass(frozen=True)
class Failure:
    """Why a target was not started."""

    message: str
    cause: Cause
    revyl_status: int | None = None


@dataclass(frozen=True)
class RevylBuild:
    """The Revyl build a route's targets run on (`version_id` None: each test's attached
    build), or the failure that leaves them without one."""

    version_id: str | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class BuildToFind:
    """One build to ingest or look up in Revyl; routes that need the same one share it."""

    mode: str
    app_id: str
    label: str
    artifact: Artifact | None


AfterStart = Callable[[Event, Build, list[RoutePlan], list[Execution]], None]
"""Called with an event's executions once they are recorded: after a delivery started runs, and
again for a duplicate (what it does must be idempotent: verdicts follow the runs)."""


class Relay:
    def __init__(
        self,
        config: RelayConfig,
        *,
        secrets: SecretReader,
        revyl: RevylClient,
        store: EventStore,
        dry_run: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.revyl = revyl
        self.store = store
        self.dry_run = dry_run
        self.clock = clock
        self.sources: dict[str, Source] = {
            name: build_source(name, settings) for name, settings in config.sources.items()
        }
        self.listeners: dict[str, Listener] = {}
        self.after_start: list[AfterStart] = []

    def listen(self, source_name: str, listener: Listener) -> None:
        """Answer `source_name`'s events with `listener` instead of routing them."""
        self.listeners[source_name] = listener

    # bytes in → event

    def source(self, name: str) -> Source:
        source = self.sources.get(name)
        if source is None:
            paths = ", ".join(f"/{known}" for known in self.sources) or "none configured"
            raise UnknownSource(f"no source named {name!r}; the sources' paths: {paths}")
        return source

    def handle(self, source_name: str, delivery: Delivery) -> Answer:
        source = self.source(source_name)
        source.verify(delivery, self.secrets.read(source.settings.secret))
        event = source.parse(delivery)
        listener = self.listeners.get(source.name)
        if listener is not None:
            return listener(event)
        if event.ignored or event.build is None:
            return answers.ignored(event, event.ignored or "nothing to do")
        event = source.enrich(event, self.secrets)
        if event.ignored or event.build is None:  # the API showed a build the relay cannot test
            return answers.ignored(event, event.ignored or "nothing to do")
        return self.trigger(source, event)

    # event → runs

    def trigger(
        self, source: Source, event: Event, routes: Sequence[Route] | None = None
    ) -> Answer:
        """`routes` stands in for the configured ones (chat-ops runs a route on the build the
        user named, which may differ from the route's own `build:` settings)."""
        build = event.build
        assert build is not None
        plans = plan_event(
            list(self.config.routes if routes is None else routes),
            build,
            event.routes,
            source.link_problem,
        )
        if not plans:
            return answers.ignored(event, "no route matched the build", build)
        if self.dry_run:
            return self.dry_run_answer(event, build, plans)
        assert self.config.revyl.token is not None
        token = self.secrets.read(self.config.revyl.token)
        claim_id = uuid.uuid4().hex
        claimed = time.monotonic()  # the lease runs from the claim's request, not its answer
        claim = self._claim(event.key, claim_id)
        if claim.kind == "done":
            recorded_before = in_plan_order(plans, claim.executions)
            self._after_start(event, build, plans, recorded_before)
            return answers.finished(event, build, recorded_before, duplicate=True)
        if claim.kind == "busy":
            raise InProgress(
                f"event {event.key} is being handled by another delivery", event=event.key
            )
        # Past this moment another delivery may take the claim over, so nothing more is started.
        stop_at = claimed + self.config.dedup.lease_seconds - self.lease_margin
        attempt = Attempt(source, event, build, token, stop_at, claim.executions)
        executions: list[Execution] = []
        recorded = False
        try:
            executions = self.run(attempt, plans)
        finally:
            done = bool(executions) and all(self.settled(e) for e in executions)
            recorded = self._release(event.key, claim_id, executions, done)
        self._after_start(event, build, plans, executions)
        return answers.finished(
            event, build, executions, unrecorded=None if recorded else UNRECORDED
        )

    def _after_start(
        self, event: Event, build: Build, plans: list[RoutePlan], executions: list[Execution]
    ) -> None:
        """The runs have started and are recorded: a hook's failure cannot undo that, so it is
        logged, and a redelivery (a duplicate) gives every hook its chance again."""
        for hook in self.after_start:
            try:
                hook(event, build, plans, executions)
            except Exception:
                log.exception("after-start hook failed", extra={"event": event.key})

    @property
    def lease_margin(self) -> float:
        """Time kept in hand at the end of a claim's lease: an execute call started before it
        ends (a whole-call bound, relay.revyl.client) and is recorded before the lease does."""
        return self.config.lease_margin

    def settled(self, execution: Execution) -> bool:
        """Never to be started again: started, or (with `retry_unknown: false`) maybe started."""
        if execution.outcome == "unknown":
            return not self.config.revyl.retry_unknown
        return execution.outcome == "started"

    def run(self, attempt: Attempt, plans: list[RoutePlan]) -> list[Execution]:
        already = {key for key, e in attempt.previous.items() if self.settled(e)}
        builds: OnceEach[BuildToFind, RevylBuild] = OnceEach(
            lambda wanted: self.find_build(attempt, wanted)
        )

        def start(item: tuple[RoutePlan, Target]) -> Execution:
            plan, target = item
            if target.key in already:
                return attempt.previous[target.key]
            known = self.known_build(plan, attempt.build)
            revyl_build = builds.get(known) if isinstance(known, BuildToFind) else known
            if time.monotonic() >= attempt.stop_at:
                lease = "not started: this delivery outlived its claim's lease"
                return not_started(target, Failure(lease, Cause.NOT_STARTED))
            execution = self.start_target(attempt, plan, target, revyl_build)
            self._record(attempt.event.key, execution)
            return execution

        # Targets whose build is known go first, so they never wait behind another route's
        # ingest; the first target of a route that needs one finds its build for all of them.
        work = [(plan, target) for plan in plans for target in plan.targets]
        waits = [isinstance(self.known_build(plan, attempt.build), BuildToFind) for plan, _ in work]
        order = sorted(range(len(work)), key=waits.__getitem__)
        started = concurrently(start, [work[i] for i in order], self.config.revyl.concurrency)
        executions: list[Execution | None] = [None] * len(work)
        for index, execution in zip(order, started, strict=True):
            executions[index] = execution
        return [e for e in executions if e is not None]  # in plan order, as the answer lists them

    def known_build(self, plan: RoutePlan, build: Build) -> RevylBuild | BuildToFind:
        """The build a route's targets run on when no call is needed, else what to find."""
        problem = plan_failure(plan)
        if problem:
            return RevylBuild(failure=problem)
        if build.build_version_id:
            return RevylBuild(build.build_version_id)
        if plan.mode == "attached":
            return RevylBuild()
        app_id, label = plan.route.build.app_id or "", plan.version_label or ""
        return BuildToFind(plan.mode, app_id, label, plan.artifact)

    def find_build(self, attempt: Attempt, wanted: BuildToFind) -> RevylBuild:
        """Ingest the artifact or look the label up; a failure fails the route's targets only."""
        deadline = attempt.deadline(self.config.revyl.retry_deadline)
        try:
            if wanted.mode == "lookup":
                found = self.revyl.lookup(attempt.token, deadline, wanted.app_id, wanted.label)
                if found is None:
                    message = f"no build labelled {wanted.label!r} in Revyl app {wanted.app_id}"
                    return RevylBuild(failure=Failure(message, Cause.REVYL))
                return RevylBuild(found)
            assert wanted.artifact is not None
            link = attempt.source.artifact_link(attempt.build, wanted.artifact, self.secrets)
            ingested = self.revyl.ingest(
                attempt.token,
                deadline,
                wanted.app_id,
                link.url,
                wanted.label,
                attempt.build,
                link.headers,
            )
            return RevylBuild(ingested)
        except RevylError as exc:
            message = f"{wanted.mode} failed: {exc.message}"
            return RevylBuild(failure=Failure(message, Cause.REVYL, exc.status))
        except RelayError as exc:  # the build system's API, minting the artifact's link
            return RevylBuild(failure=Failure(exc.message, exc.cause))

    def start_target(
        self, attempt: Attempt, plan: RoutePlan, target: Target, revyl_build: RevylBuild
    ) -> Execution:
        if revyl_build.failure:
            return not_started(target, revyl_build.failure)
        version_id = revyl_build.version_id if target.test_id else None
        # retries of the start get a budget of their own, after however long the ingest took
        deadline = attempt.deadline(self.config.revyl.retry_deadline)
        try:
            if target.test_id:
                started = self.revyl.execute_test(
                    attempt.token, deadline, target.test_id, revyl_build.version_id, attempt.build
                )
            else:
                assert target.workflow_id is not None
                started = self.revyl.execute_workflow(
                    attempt.token,
                    deadline,
                    target.workflow_id,
                    attempt.build,
                    plan.route.build.app_id,
                    plan.version_label,
                )
        except RevylError as exc:
            failed = not_started(target, Failure(exc.message, Cause.REVYL, exc.status))
            outcome = "unknown" if isinstance(exc, MaybeStarted) else "failed"
            return failed.model_copy(update={"outcome": outcome, "build_version_id": version_id})
        kind: Literal["test", "workflow"] = "test" if target.test_id else "workflow"
        return Execution(
            route=target.route,
            test_id=target.test_id,
            workflow_id=target.workflow_id,
            execution_id=started.execution_id,
            status=started.status,
            report_url=sansio.report_url(self.config.revyl.app_url, kind, started.execution_id),
            build_version_id=version_id,
        )

    @property
    def dry_run_reason(self) -> str:
        token = self.config.revyl.token
        if self.config.revyl.dry_run:
            return "revyl.dry_run is true: nothing was started"
        if token is not None and token.env:
            return f"the Revyl token's variable {token.env} is not set: nothing was started"
        return "no Revyl token is configured: nothing was started"

    def dry_run_answer(self, event: Event, build: Build, plans: list[RoutePlan]) -> Answer:
        """What would start, and what would fail as the live relay fails it (a plan's problem)."""
        planned = [
            not_started(t, failure)
            if (failure := plan_failure(plan))
            else Execution(
                route=t.route, test_id=t.test_id, workflow_id=t.workflow_id, outcome="planned"
            )
            for plan in plans
            for t in plan.targets
        ]
        described = [describe_plan(plan, build, self.config.revyl.client_name) for plan in plans]
        return answers.dry_run(event, build, planned, described, self.dry_run_reason)

    # the store: failures before anything started are 503; after, they must not lose a start

    def _claim(self, key: str, claim_id: str) -> Claim:
        try:
            return self.store.claim(key, claim_id, self.clock())
        except Exception as exc:
            log.error(
                "the event store could not be reached", extra={"event": key, "reason": repr(exc)}
            )
            # The claim may have been written with only its answer lost: release it, or every
            # redelivery would wait out the whole lease.
            with contextlib.suppress(Exception):
                self.store.release(key, claim_id, [], False, self.clock())
            message = f"the event store is unavailable ({type(exc).__name__}): nothing was started"
            raise StoreUnavailable(message, event=key) from None

    def _record(self, key: str, execution: Execution) -> None:
        try:
            self.store.record(key, execution)
        except Exception as exc:  # the release at the end writes it again
            log.warning(
                "could not record an execution yet",
                extra={"event": key, "reason": type(exc).__name__},
            )

    def _release(self, key: str, claim_id: str, executions: list[Execution], done: bool) -> bool:
        """End the claim; False if the store did not take the outcome (see UNRECORDED)."""
        try:
            self.store.release(key, claim_id, executions, done, self.clock())
            return True
        except Exception as exc:
            log.error(
                "could not record the outcome of an event in the event store",
                extra={"event": key, "reason": type(exc).__name__},
            )
            return False


def plan_failure(plan: RoutePlan) -> Failure | None:
    """Why a planned route cannot run for its build (nothing of it is started), or None."""
    return Failure(plan.problem, Cause.UNPROCESSABLE) if plan.problem else None


def not_started(target: Target, failure: Failure) -> Execution:
    return Execution(
        route=target.route,
        test_id=target.test_id,
        workflow_id=target.workflow_id,
        outcome="failed",
        error=failure.message,
        revyl_status=failure.revyl_status,
        cause=failure.cause,
    )


def in_plan_order(plans: list[RoutePlan], executions: Mapping[str, Execution]) -> list[Execution]:
    """Recorded executions in the order the plans list their targets (as the first answer)."""
    keys = [target.key for plan in plans for target in plan.targets]
    ordered = [executions[key] for key in keys if key in executions]
    return ordered + [e for key, e in executions.items() if key not in keys]


def describe_plan(plan: RoutePlan, build: Build, client_name: str) -> dict[str, Any]:
    """A route's plan and every Revyl call it would make (the token masked): dry-run output."""
    calls: list[dict[str, Any]] = []
    version_id = build.build_version_id
    if plan.problem is None and not version_id and plan.mode != "attached":
        app_id = plan.route.build.app_id or ""
        label = plan.version_label or ""
        if plan.mode == "ingest" and plan.artifact:
            url = plan.artifact.url or f"<link for {plan.artifact.name}>"
            calls.append(sansio.ingest_build(app_id, url, label, build, None).describe())
        else:
            calls.append(sansio.list_builds(app_id, label, 1).describe())
        version_id = f"<build_version_id from {plan.mode}>"
    for target in plan.targets:
        if target.test_id:
            request = sansio.execute_test(target.test_id, version_id, build, client_name)
        else:
            request = sansio.execute_workflow(
                target.workflow_id or "",
                build,
                client_name,
                plan.route.build.app_id,
                plan.version_label,
            )
        calls.append(request.describe())
    return {**plan.describe(), "calls": calls}
