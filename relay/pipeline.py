"""The relay, step by step: delivery → verified → event → routes → builds resolved → runs started.

`Relay.handle` is the whole path for one webhook. The pure steps live elsewhere (sources,
`routing`, `revyl.sansio`); this module sequences them and owns the I/O ordering rules:
nothing is started before the event is claimed, and every start is recorded as it happens.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from relay.config import RelayConfig, Route
from relay.errors import InProgress, RelayError, StoreUnavailable, Unavailable, UnknownSource
from relay.models import Artifact, Build, ErrorItem, Event, Execution, RelayResponse
from relay.revyl import sansio
from relay.revyl.client import RevylClient
from relay.revyl.sansio import MaybeStarted, RevylError
from relay.routing import RoutePlan, Target, plan_event
from relay.secrets import SecretReader
from relay.sources import Delivery, Source, build_source
from relay.stores import Claim, EventStore

log = logging.getLogger("relay")
T = TypeVar("T")
R = TypeVar("R")

UNRECORDED = (
    "the event store did not take this outcome: this instance keeps it and writes it when the "
    "store answers again; until then a redelivery to another instance may answer 409 or 503"
)


@dataclass
class Answer:
    """An HTTP answer: `body` is what is logged and, unless a source gives its own `reply`
    (Slack's Block Kit), what is sent."""

    status: int
    body: RelayResponse
    headers: dict[str, str] = field(default_factory=dict)
    reply: dict[str, Any] | None = None


@dataclass(frozen=True)
class Resolved:
    """The Revyl build a route's targets run on (None: the tests' attached build), or why not."""

    build_version_id: str | None = None
    error: str | None = None
    revyl_status: int | None = None
    answer_status: int | None = None  # see Execution.answer_status


@dataclass(frozen=True)
class Resolution:
    """One build to find in Revyl; routes that need the same one share it."""

    mode: str
    app_id: str
    label: str
    artifact: Artifact | None


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

    # bytes in → event

    def source(self, name: str) -> Source:
        source = self.sources.get(name)
        if source is None:
            raise UnknownSource(f"no source named {name!r}; POST to /<source name>")
        return source

    def handle(self, source_name: str, delivery: Delivery) -> Answer:
        source = self.source(source_name)
        source.verify(delivery, self.secrets.read(source.settings.secret))
        event = source.parse(delivery)
        answer = source.respond(event, self)
        if answer is not None:
            return answer
        if event.ignored or event.build is None:
            return ignored(event, event.ignored or "nothing to do")
        event = source.enrich(event, self.secrets)
        if event.ignored or event.build is None:  # the API showed a build the relay cannot test
            return ignored(event, event.ignored or "nothing to do")
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
            list(self.config.routes if routes is None else routes), build, event.routes
        )
        if not plans:
            return ignored(event, "no route matched the build", build)
        if self.dry_run:
            return self.dry_run_answer(event, build, plans)
        assert self.config.revyl.token is not None
        token = self.secrets.read(self.config.revyl.token)
        claim_id = uuid.uuid4().hex
        claim = self._claim(event.key, claim_id)
        if claim.kind == "done":
            return finished(event, build, in_plan_order(plans, claim.executions), duplicate=True)
        if claim.kind == "busy":
            raise InProgress(
                f"event {event.key} is being handled by another delivery", event=event.key
            )
        # Past this moment another delivery may take the claim over, so nothing more is started.
        stop_at = time.monotonic() + self.config.dedup.lease_seconds - self.lease_margin
        executions: list[Execution] = []
        recorded = False
        try:
            executions = self.run(source, build, plans, token, claim.executions, event.key, stop_at)
        finally:
            done = bool(executions) and all(self.settled(e) for e in executions)
            recorded = self._release(event.key, claim_id, executions, done)
        answer = finished(event, build, executions)
        if not recorded:
            answer.body.reason = UNRECORDED
        return answer

    @property
    def lease_margin(self) -> float:
        """Time kept in hand at the end of a claim's lease: an execute call started before it
        ends before the lease does."""
        return self.config.revyl.connect_timeout + self.config.revyl.request_timeout

    def settled(self, execution: Execution) -> bool:
        """Never to be started again: started, or (with `retry_unknown: false`) maybe started."""
        if execution.outcome == "unknown":
            return not self.config.revyl.retry_unknown
        return execution.outcome == "started"

    def run(
        self,
        source: Source,
        build: Build,
        plans: list[RoutePlan],
        token: str,
        previous: dict[str, Execution],
        event_key: str,
        stop_at: float,
    ) -> list[Execution]:
        already = {key for key, e in previous.items() if self.settled(e)}
        builds = OnceEach(lambda job: self.resolve_build(source, build, job, token))

        def start(item: tuple[RoutePlan, Target]) -> Execution:
            plan, target = item
            if target.key in already:
                return previous[target.key]
            found = self.known_build(plan, build)
            resolved = builds.get(found) if isinstance(found, Resolution) else found
            if time.monotonic() >= stop_at:
                return not_started(target, "not started: this delivery outlived its claim's lease")
            # retries of the start get a budget of their own, after however long the ingest took
            deadline = time.monotonic() + self.config.revyl.retry_deadline
            execution = self.start_target(plan, target, build, resolved, token, deadline)
            self._record(event_key, execution)
            return execution

        # Targets whose build is known go first, so they never wait behind another route's
        # ingest; the first target of a route that needs one finds its build for all of them.
        work = [(plan, target) for plan in plans for target in plan.targets]
        waits = [isinstance(self.known_build(plan, build), Resolution) for plan, _ in work]
        order = sorted(range(len(work)), key=waits.__getitem__)
        started = concurrently(start, [work[i] for i in order], self.config.revyl.concurrency)
        executions: list[Execution] = [None] * len(work)  # type: ignore[list-item]
        for index, execution in zip(order, started, strict=True):
            executions[index] = execution
        return executions  # in plan order, as the answer lists them

    def known_build(self, plan: RoutePlan, build: Build) -> Resolved | Resolution:
        """The build a route's targets run on when no call is needed, else what to find."""
        if plan.problem:
            return Resolved(error=plan.problem, answer_status=422)
        if build.build_version_id:
            return Resolved(build.build_version_id)
        if plan.mode == "attached":
            return Resolved()
        app_id, label = plan.route.build.app_id or "", plan.version_label or ""
        return Resolution(plan.mode, app_id, label, plan.artifact)

    def resolve_build(self, source: Source, build: Build, job: Resolution, token: str) -> Resolved:
        """Ingest the artifact or look the label up; a failure fails the route's targets only."""
        deadline = time.monotonic() + self.config.revyl.retry_deadline
        try:
            if job.mode == "lookup":
                found = self.revyl.lookup(token, deadline, job.app_id, job.label)
                if found is None:
                    message = f"no build labelled {job.label!r} in Revyl app {job.app_id}"
                    return Resolved(error=message)
                return Resolved(found)
            assert job.artifact is not None
            link = source.artifact_link(build, job.artifact, self.secrets)
            ingested = self.revyl.ingest(
                token, deadline, job.app_id, link.url, job.label, build, link.headers
            )
            return Resolved(ingested)
        except RevylError as exc:
            return Resolved(error=f"{job.mode} failed: {exc.message}", revyl_status=exc.status)
        except RelayError as exc:  # the build system's API, minting the artifact's link
            return Resolved(error=exc.message, answer_status=exc.status)

    def start_target(
        self,
        plan: RoutePlan,
        target: Target,
        build: Build,
        resolved: Resolved,
        token: str,
        deadline: float,
    ) -> Execution:
        base = Execution(
            route=target.route,
            test_id=target.test_id,
            workflow_id=target.workflow_id,
            build_version_id=resolved.build_version_id if target.test_id else None,
        )
        if resolved.error:
            update = {
                "outcome": "failed",
                "error": resolved.error,
                "revyl_status": resolved.revyl_status,
                "answer_status": resolved.answer_status,
            }
            return base.model_copy(update=update)
        try:
            if target.test_id:
                started = self.revyl.execute_test(
                    token, deadline, target.test_id, resolved.build_version_id, build
                )
            else:
                assert target.workflow_id is not None
                started = self.revyl.execute_workflow(
                    token,
                    deadline,
                    target.workflow_id,
                    build,
                    plan.route.build.app_id,
                    plan.version_label,
                )
        except RevylError as exc:
            outcome = "unknown" if isinstance(exc, MaybeStarted) else "failed"
            update = {"outcome": outcome, "error": exc.message, "revyl_status": exc.status}
            return base.model_copy(update=update)
        kind = "test" if target.test_id else "workflow"
        return base.model_copy(
            update={
                "execution_id": started.execution_id,
                "status": started.status,
                "report_url": sansio.report_url(
                    self.config.revyl.app_url, kind, started.execution_id
                ),
            }
        )

    @property
    def dry_run_reason(self) -> str:
        if self.config.revyl.dry_run:
            return "revyl.dry_run is true: nothing was started"
        return "no Revyl token is configured: nothing was started"

    def dry_run_answer(self, event: Event, build: Build, plans: list[RoutePlan]) -> Answer:
        executions = [
            Execution(
                route=t.route, test_id=t.test_id, workflow_id=t.workflow_id, outcome="planned"
            )
            for plan in plans
            for t in plan.targets
        ]
        body = RelayResponse(
            event=event.key,
            decision="dry_run",
            reason=self.dry_run_reason,
            build=build.summary(),
            executions=executions,
            plan=[describe_plan(plan, build, self.config.revyl.client_name) for plan in plans],
        )
        return Answer(200, body)

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


class OnceEach:
    """Runs `fn` once per distinct argument, in the first thread that asks; the others wait
    for that result."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self._fn = fn
        self._futures: dict[Any, Future[Any]] = {}
        self._lock = threading.Lock()

    def get(self, argument: Any) -> Any:
        with self._lock:
            future = self._futures.get(argument)
            owner = future is None
            if future is None:
                future = self._futures[argument] = Future()
        if owner:
            try:
                future.set_result(self._fn(argument))
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


def not_started(target: Target, reason: str) -> Execution:
    return Execution(
        route=target.route,
        test_id=target.test_id,
        workflow_id=target.workflow_id,
        outcome="failed",
        error=reason,
    )


def in_plan_order(plans: list[RoutePlan], executions: dict[str, Execution]) -> list[Execution]:
    """Recorded executions in the order the plans list their targets (as the first answer)."""
    keys = [target.key for plan in plans for target in plan.targets]
    ordered = [executions[key] for key in keys if key in executions]
    return ordered + [e for key, e in executions.items() if key not in keys]


# Made once, reused by every webhook: a fan-out to 50 tests does not start and join 50 threads.
# Threads are created only when none is idle, so it holds as many as were ever busy at once.
_POOL = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="relay")


def concurrently(fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
    """`fn` over `items`, at most `limit` at a time, results in order. `fn` should not raise:
    an exception is raised here only after every call has ended.
    Each call runs in a copy of the caller's context, so log lines keep the request's trace."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    context = contextvars.copy_context()
    gate = threading.Semaphore(limit)

    def run(item: T) -> R:
        try:
            return context.copy().run(fn, item)
        finally:
            gate.release()

    futures = []
    for item in items:
        gate.acquire()
        futures.append(_POOL.submit(run, item))
    wait(futures)  # every call ends before an error (there should be none) is raised
    return [future.result() for future in futures]


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


def ignored(event: Event, reason: str, build: Build | None = None) -> Answer:
    body = RelayResponse(
        event=event.key, decision="ignored", reason=reason, build=build.summary() if build else None
    )
    return Answer(200, body)


def finished(
    event: Event, build: Build, executions: Iterable[Execution], duplicate: bool = False
) -> Answer:
    executions = list(executions)
    started = [e for e in executions if e.outcome == "started"]
    errors = [
        ErrorItem(
            message=e.error or e.outcome,
            route=e.route,
            test_id=e.test_id,
            workflow_id=e.workflow_id,
            revyl_status=e.revyl_status,
        )
        for e in executions
        if e.outcome != "started"
    ]
    version_ids = {e.build_version_id for e in executions if e.build_version_id}
    summary = build.summary()
    if len(version_ids) == 1 and not summary.get("build_version_id"):
        summary["build_version_id"] = version_ids.pop()
    if duplicate:
        decision, status = "duplicate", 200
    elif len(started) == len(executions):
        decision, status = "triggered", 200
    elif not started and len(own := {e.answer_status for e in executions}) == 1 and None not in own:
        decision, status = "failed", own.pop()  # every route failed the same way, before Revyl
    else:
        decision, status = ("partial" if started else "failed"), 502
    headers = {"Retry-After": str(Unavailable.retry_after)} if status == 503 else {}
    reasons = {e.message for e in errors}
    body = RelayResponse(
        event=event.key,
        decision=decision,
        reason=reasons.pop() if not started and len(reasons) == 1 else None,
        build=summary,
        execution_ids=[e.execution_id for e in started if e.execution_id],
        executions=executions,
        errors=errors,
    )
    return Answer(status, body, headers)
