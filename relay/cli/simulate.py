"""`python -m relay simulate`: what would the relay do with this payload?

The relay's own steps (the source's `parse`, `Relay.trigger` of a relay in dry-run, which plans
with `routing.plan_event` and describes each plan with `pipeline.describe_plan`), minus the
signature check and any I/O. The decision is `relay.answers`': ignored, the dry-run answer, or
`answers.finished` over the executions the plans imply (a relay with a token). A source that
enriches its builds from its system's API (or a chat-ops source, whose listener answers)
runs inside `offline()`: the first request it would make is shown instead of made.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

from relay import answers
from relay.answers import Answer
from relay.cli.common import CliError, load, read_payload, source_named
from relay.cli.offline import OfflineSecrets, offline
from relay.config import Match, RelayConfig, Route, token_is_set
from relay.errors import RelayError
from relay.models import Build, Event, Execution
from relay.pipeline import Relay, not_started, plan_failure
from relay.routing import RoutePlan, plan_event, route_matches
from relay.sources import Delivery, Source
from relay.tasks import Task, TaskQueue

# The exit codes, so a CI step can gate on the prediction (1: a usage or config mistake and
# 2: argparse's usage errors, as for every command).
WOULD_START = 0  # triggered (or, in dry-run, would trigger with a token); a chat-ops reply
PREDICTS_4XX = 3  # the relay would refuse the delivery or fail it for good (400, 401, 422...)
PREDICTS_5XX = 4  # the relay would fail it in a way a retry may mend (502, 503)
STARTS_NOTHING = 5  # the relay would answer 200 `ignored`: no route runs


def run(args: argparse.Namespace) -> int:
    _, config = load(args.config)
    source = source_named(config, args.source)
    body = read_payload(args.payload)
    now = time.time()
    filled = sender_headers(source, body, now)
    delivery = Delivery({**filled, **dict(args.headers)}, body, now)
    report = simulate(config, source, delivery)
    shown = {name: value for name, value in filled.items() if name not in dict(args.headers)}
    report = {"sender_headers": shown, **report} if shown else report
    print(json.dumps(report, indent=2) if args.json else render(report))
    return exit_code(report)


def exit_code(report: dict[str, Any]) -> int:
    """The prediction for a relay with a token: in dry-run, what it would answer."""
    predicted = report.get("with_token", report)
    return code_for(predicted["status"], predicted["decision"])


def code_for(status: int, decision: str) -> int:
    if status >= 500:
        return PREDICTS_5XX
    if status >= 400:
        return PREDICTS_4XX
    return STARTS_NOTHING if decision == "ignored" else WOULD_START


def sender_headers(source: Source, body: bytes, now: float) -> dict[str, str]:
    """The headers the source's sender adds besides its signature (event type, delivery id,
    timestamp), so a body copied from a delivery log parses as delivered. Headers whose value
    depends on the secret (the signatures) are left out: simulate checks none."""
    delivery_id = f"simulated-{uuid.uuid4().hex[:12]}"
    try:
        one = source.sign(body, "simulate-secret-one", now, delivery_id)
        two = source.sign(body, "simulate-secret-two", now, delivery_id)
    except RelayError:  # a body the sender's scheme cannot place: --header must say it
        return {}
    return {name.lower(): value for name, value in one.items() if two.get(name) == value}


def simulate(
    config: RelayConfig,
    source: Source,
    delivery: Delivery,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """The relay's path for one delivery, as data; raises the RelayError it would answer.
    `environ` decides, as in the relay, whether a token is set (else the relay runs dry)."""
    report: dict[str, Any] = {"source": source.name, "type": source.type}
    try:
        event = source.parse(delivery)
    except RelayError as exc:
        answer = answers.for_error(exc)
        message = f"the relay would answer {answer.status} {answer.body.decision}: {exc.message}"
        raise CliError(message, code_for(answer.status, answer.body.decision)) from None
    report["event"] = event.key
    relay = offline_relay(config)
    if source.name in relay.listeners:
        return {**report, **chat_ops_answer(relay, source, event)}
    if event.ignored or event.build is None:
        return {**report, **decision(answers.ignored(event, event.ignored or "nothing to do"))}
    if overrides(source, "enrich"):
        report["enrichment"] = try_enrichment(source, event)
        report["decision_on"] = "the payload alone: the relay decides on the enriched build"
    build = event.build
    report["build"] = build_fields(build)
    plans = plan_event(config.routes, build, event.routes, source.link_problem)
    answer = relay.trigger(source, event)  # in dry-run: ignored, or the plan, and no I/O
    report["routes"] = answer.body.plan or []
    if not event.routes:
        report["not_matched"] = not_matched(config.routes, build, plans)
    warned = warnings(plans)
    if warned:
        report["warnings"] = warned
    followed = reports_for(config, plans)
    if followed:
        report["reports"] = followed
    if not plans:
        return {**report, **decision(answer)}
    with_token = decision(would_answer(event, build, plans), reason_for(plans))
    if token_is_set(config, environ):
        return {**report, **with_token}
    return {
        **report,
        **decision(answer),
        "note": dry_run_cause(config),
        "with_token": with_token,
    }


def reports_for(config: RelayConfig, plans: list[RoutePlan]) -> list[dict[str, Any]]:
    """What each matched route that names report targets would lead to, once its runs start:
    its check followed (how often, for how long) and the messages each target would get."""
    verdicts = config.verdicts
    if verdicts is None:
        return []
    found = []
    for plan in plans:
        if not plan.route.report or plan.problem:
            continue
        targets = [
            {"target": name, "type": config.reports[name].type, "messages": MESSAGES}
            for name in plan.route.report
        ]
        found.append(
            {
                "route": plan.route.name,
                "follow": verdicts.follow,
                "poll_seconds": verdicts.poll_seconds,
                "give_up_seconds": verdicts.give_up_seconds,
                "targets": targets,
            }
        )
    return found


MESSAGES = ["check.started (runs started)", "check.finished (verdict passed, failed or error)"]


class HeldTasks(TaskQueue):
    """A task queue that runs nothing: simulate shows what would be scheduled."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: list[Task] = []

    def schedule(self, task: Task, attempt: int = 1) -> None:
        self.scheduled.append(task)


def offline_relay(config: RelayConfig) -> Relay:
    """A relay in dry-run, assembled as the relay is, that reads no secret, whose Revyl client
    is never called and whose tasks never run."""
    from relay.revyl.client import RequestsRevylClient
    from relay.stores.memory import MemoryEventStore
    from relay.wiring import assemble

    relay = Relay(
        config,
        secrets=OfflineSecrets(),
        revyl=RequestsRevylClient(config.revyl),
        store=MemoryEventStore(config.dedup.lease_seconds),
        dry_run=True,
    )
    return assemble(relay, HeldTasks())


def would_answer(event: Event, build: Build, plans: list[RoutePlan]) -> Answer:
    """The relay's answer with a token, if every Revyl call succeeds: `answers.finished` over
    the executions the plans imply. A plan with a problem fails as the relay fails it
    (`pipeline.plan_failure`), before any I/O."""
    executions = []
    for plan in plans:
        failure = plan_failure(plan)
        for target in plan.targets:
            if failure:
                executions.append(not_started(target, failure))
            else:
                executions.append(
                    Execution(
                        route=target.route, test_id=target.test_id, workflow_id=target.workflow_id
                    )
                )
    return answers.finished(event, build, executions)


def warnings(plans: list[RoutePlan]) -> list[str]:
    """What the relay would do, and Revyl likely fail: an iOS device build to ingest."""
    return [
        f"route {plan.route.name}: {ipa_warning(plan.artifact.name)}"
        for plan in plans
        if plan.problem is None and plan.artifact is not None and plan.artifact.kind == "ipa"
    ]


def ipa_warning(name: str) -> str:
    return (
        f"ingests {name!r}, an iOS device build (.ipa): Revyl runs iOS tests on simulators, "
        "which cannot install one; give the route a simulator build (.app, .tar.gz or .zip, "
        "e.g. `asset: '*.tar.gz'`)"
    )


def dry_run_cause(config: RelayConfig) -> str:
    """Why `token_is_set` is false, in the words of this report."""
    token = config.revyl.token
    if config.revyl.dry_run:
        return "revyl.dry_run is true: the relay starts nothing"
    if token is None:
        return "the config has no Revyl token: the relay starts nothing"
    return f"revyl.token is env {token.env}, not set in this shell: a relay run here starts nothing"


def overrides(source: Source, method: str) -> bool:
    return getattr(type(source), method) is not getattr(Source, method)


def decision(answer: Answer, reason: str | None = None) -> dict[str, Any]:
    return {
        "decision": answer.body.decision,
        "status": answer.status,
        "reason": reason or answer.body.reason,
    }


def reason_for(plans: list[RoutePlan]) -> str:
    """What would start and what could not, for a relay with a token."""
    runnable = [p for p in plans if p.problem is None]
    tests = sum(1 for p in runnable for t in p.targets if t.test_id)
    workflows = sum(1 for p in runnable for t in p.targets if t.workflow_id)
    counts = [_n(n, noun) for n, noun in ((tests, "test"), (workflows, "workflow")) if n]
    would_start = f"{' and '.join(counts) or 'nothing'} would start"
    if len(runnable) == len(plans):
        return f"{_n(len(plans), 'route')} matched: {would_start}"
    problems = "; ".join(f"{p.route.name}: {p.problem}" for p in plans if p.problem)
    return f"{would_start}; {problems}" if runnable else problems


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def build_fields(build: Build) -> dict[str, Any]:
    fields = {k: v for k, v in build.summary().items() if v not in (None, "", [])}
    if build.artifacts:
        fields["artifacts"] = [a.url or a.name for a in build.artifacts]
    return fields


def not_matched(routes: list[Route], build: Build, plans: list[RoutePlan]) -> dict[str, str]:
    """Per route that did not match: which `when` fields ruled it out."""
    matched = {p.route.name for p in plans}
    reasons = {}
    for route in routes:
        if route.name in matched:
            continue
        failing = []
        for name, pattern in route.when.given.items():
            alone = route.model_copy(update={"when": Match(**{name: pattern})})
            if not route_matches(alone, build):
                value = getattr(build, name)
                shown = "unknown" if value is None else repr(str(value))
                failing.append(f"{name} is {shown} (route wants {pattern!r})")
        reasons[route.name] = "; ".join(failing) or "matched, but not planned"
    return reasons


def try_enrichment(source: Source, event: Event) -> dict[str, Any]:
    """Run the source's enrichment with no secrets and no network: what would it fetch?"""
    secrets = OfflineSecrets()
    with offline() as recorder:
        try:
            source.enrich(event, secrets)
            outcome = "needs no request"
        except Exception as exc:  # refused offline, or choked on a placeholder credential
            reason = exc.message if isinstance(exc, RelayError) else type(exc).__name__
            outcome = (
                "stops there: simulate sends no request (later ones depend on the answer)"
                if recorder.requests
                else f"stopped before any request: {reason}"
            )
    return {
        "secrets": secrets.asked,
        "requests": recorder.requests,
        "outcome": outcome,
        "note": "simulate calls no build system: the build below lacks what enrichment adds",
    }


def chat_ops_answer(relay: Relay, source: Source, event: Event) -> dict[str, Any]:
    """A source's listener's answer (chat-ops), from a relay in dry-run that can reach nothing."""
    with offline() as recorder:
        answer = relay.listeners[source.name](event)
    body = answer.body
    result: dict[str, Any] = {
        "decision": body.decision,
        "status": answer.status,
        "reason": body.reason,
    }
    if body.build:
        result["build"] = body.build
    if body.plan is not None:
        result["routes"] = body.plan
    if answer.reply is not None:
        result["reply"] = answer.reply
    if recorder.requests:
        result["requests"] = recorder.requests
    return result


# --- the human-readable report ---------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    lines = [f"source    {report['source']} (type {report['type']}); signature not checked"]
    headers = [f"{name}: {value}" for name, value in report.get("sender_headers", {}).items()]
    if headers:
        lines += _block(
            "headers", [*headers, "(added as the sender adds them; --header overrides)"]
        )
    lines.append(f"event     {report['event']}")
    if "enrichment" in report:
        lines += _enrichment_lines(report["enrichment"])
    if "build" in report:
        lines += _block("build", [f"{k:<16} {_value(v)}" for k, v in report["build"].items()])
    on = f" on {report['decision_on']}" if report.get("decision_on") else ""
    if "with_token" in report:
        lines += _decision_lines("decision", report)
        lines.append(f"note      {report['note']}")
        lines += _decision_lines("if token", report["with_token"], on)
    else:
        lines += _decision_lines("decision", report, on)
    lines += _block("warning", report.get("warnings", []))
    for plan in report.get("routes") or []:
        lines += ["", *_plan_lines(plan)]
    for followed in report.get("reports", []):
        lines += ["", *_report_lines(followed)]
    if report.get("not_matched"):
        lines += ["", "not matched"]
        lines += [f"  {name}: {why}" for name, why in report["not_matched"].items()]
    if "reply" in report:
        lines += [
            "",
            "reply (sent to the chat as is)",
            _indent(json.dumps(report["reply"], indent=2)),
        ]
    return "\n".join(lines)


def _report_lines(followed: dict[str, Any]) -> list[str]:
    how = "in this process" if followed["follow"] == "local" else "on Cloud Tasks"
    lines = [
        f"reports of {followed['route']}: its runs followed {how}, status every "
        f"{followed['poll_seconds']:g} s, given up after {followed['give_up_seconds']:g} s"
    ]
    for target in followed["targets"]:
        messages = " then ".join(m.split(" ", 1)[0] for m in target["messages"])
        lines.append(f"  {target['target']} ({target['type']}): {messages}")
    return lines


def _decision_lines(title: str, decided: dict[str, Any], on: str = "") -> list[str]:
    return _block(
        title, [f"{decided['decision']} (HTTP {decided['status']}){on}", decided["reason"]]
    )


def _block(title: str, rows: list[str]) -> list[str]:
    return [f"{title:<9} {rows[0]}", *(f"{'':<9} {row}" for row in rows[1:])] if rows else []


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value).replace("\n", "\n" + " " * 27)
    return str(value)


def _enrichment_lines(enrichment: dict[str, Any]) -> list[str]:
    rows = [f"reads    {s}" for s in enrichment["secrets"]]
    rows += [f"would    {r['method']} {r['url']}" for r in enrichment["requests"]]
    rows.append(enrichment["outcome"])
    if enrichment["secrets"]:
        rows.append("(simulate reads no secret: each one was given a placeholder value)")
    rows.append(enrichment["note"])
    return _block("enrich", rows)


def _plan_lines(plan: dict[str, Any]) -> list[str]:
    title = f"route {plan['route']}: {plan['build_mode']}"
    if plan.get("app_id"):
        title += f" app {plan['app_id']}"
    if plan.get("version_label"):
        title += f", label {plan['version_label']!r}"
    if plan.get("artifact"):
        title += f", artifact {plan['artifact']}"
    lines = [title]
    if plan.get("problem"):
        return [*lines, f"  nothing starts: {plan['problem']}"]
    for number, call in enumerate(plan["calls"], 1):
        query = "&".join(f"{k}={v}" for k, v in (call.get("params") or {}).items())
        lines.append(f"  {number}. {call['method']} {call['path']}{'?' + query if query else ''}")
        lines += [f"       {name}: {value}" for name, value in call["headers"].items()]
        if "body" in call:
            lines.append(_indent(_json(call["body"]), 7))
    return lines


def _json(value: Any) -> str:
    compact = json.dumps(value)
    return compact if len(compact) <= 90 else json.dumps(value, indent=2)


def _indent(text: str, spaces: int = 2) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())
