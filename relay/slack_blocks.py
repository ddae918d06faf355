"""Slack answers as Block Kit JSON, pure: data in, the message dict out.

Every message has a plain `text` fallback (notifications, screen readers, old clients) and
`blocks`; `response_type` is `in_channel` (everyone sees it) or `ephemeral` (only the person
who typed the command). Slack reads both as mrkdwn, so everything interpolated into either is
escaped (`&`, `<`, `>`) and can never turn into a mention or a link: the only links are the
ones `link` makes, to report URLs the relay built from ids that are UUIDs, and the only
mentions are `mention`s of what is shaped like a Slack user id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from relay.config import Route
from relay.models import Execution, RelayResponse
from relay.revyl.sansio import read_run_state

Message = dict[str, Any]
ResponseType = Literal["in_channel", "ephemeral"]

SECTION_LIMIT = 2900  # Slack caps a section's text at 3000 characters
MAX_BLOCKS = 50


USER_ID = re.compile(r"[UW][A-Z0-9]{1,20}")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """`<url|label>` that neither part can end early or turn into another link: both are
    escaped, and a `|` in the URL (where Slack would start the label) is percent-encoded."""
    return f"<{escape(url).replace('|', '%7C')}|{escape(label)}>"


def mention(user_id: str) -> str:
    """`<@U…>` for a Slack user id; anything else shown as the escaped text it is."""
    return f"<@{user_id}>" if USER_ID.fullmatch(user_id) else escape(user_id)


def is_uuid(value: str | None) -> bool:
    """Revyl's execution ids are UUIDs: only then does the relay link to a report for one."""
    try:
        return value is not None and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def code(text: str) -> str:
    quoted = escape(text).replace("`", "'")
    return f"`{quoted}`"


def message(response_type: ResponseType, text: str, blocks: Sequence[Message]) -> Message:
    return {"response_type": response_type, "text": text, "blocks": list(blocks)[:MAX_BLOCKS]}


def section(markdown: str) -> Message:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}


def context(markdown: str) -> Message:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": markdown}]}


def sections(lines: Iterable[str]) -> list[Message]:
    """Lines packed into as few sections as Slack's per-section limit allows."""
    blocks: list[Message] = []
    current = ""
    for line in lines:
        if current and len(current) + len(line) + 1 > SECTION_LIMIT:
            blocks.append(section(current))
            current = ""
        current = f"{current}\n{line}" if current else line[:SECTION_LIMIT]
    if current:
        blocks.append(section(current))
    return blocks


def notice(text: str, markdown: str | None = None) -> Message:
    """An ephemeral one-liner: refusals, errors."""
    return message("ephemeral", escape(text), [section(markdown or escape(text))])


def usage(command: str, problem: str | None = None) -> Message:
    name = escape(command)
    lines = [
        f"*{name} run &lt;route&gt; [&lt;version label&gt; | &lt;build_version_id&gt;]*",
        "Start the route's tests and workflows on that Revyl build (found by its version label"
        " in the route's Revyl app), or on the builds attached to the tests when none is given."
        f" Example: `{name} run ios-smoke 2.4.0 (187)`",
        f"*{name} status &lt;execution id&gt;* — status, progress, pass/fail and the report link",
        f"*{name} routes* — the routes you may run, with their tests",
        f"*{name} help* — this text",
    ]
    intro = f"{escape(problem)}\n\n" if problem else ""
    summary = (
        f"Usage: {command} run <route> [<version label> | <build_version_id>] · "
        f"{command} status <execution id> · {command} routes · {command} help"
    )
    text = escape(f"{problem} {summary}" if problem else summary)
    return message("ephemeral", text, [section(intro + "\n".join(lines))])


def target_name(execution: Execution) -> str:
    kind, ident = (
        ("test", execution.test_id) if execution.test_id else ("workflow", execution.workflow_id)
    )
    return f"{kind} {code((ident or '?')[:8])}"


def execution_line(execution: Execution) -> str:
    name = target_name(execution)
    if execution.outcome == "started":
        url = execution.report_url if is_uuid(execution.execution_id) else None
        report = link(url, "report") if url else "no report link"
        status = escape(execution.status or "started")
        return (
            f":white_check_mark: {name} {status} · {report} · {code(execution.execution_id or '')}"
        )
    if execution.outcome == "planned":
        return f":large_blue_circle: {name} would start (dry run)"
    reason = escape(execution.error or execution.outcome)
    if execution.outcome == "unknown":
        return f":warning: {name} may have started: {reason} (check Revyl before running again)"
    return f":x: {name} failed: {reason}"


def run_result(
    command: str,
    user_id: str,
    route: str,
    build: str,
    body: RelayResponse,
    notes: Sequence[str] = (),
) -> Message:
    """The answer to `run`: who asked, the build, one line per execution, failures with why."""
    executions = body.executions
    started = [e for e in executions if e.outcome == "started"]
    failed = [e for e in executions if e.outcome in ("failed", "unknown")]
    verb = {"dry_run": "asked for a dry run of", "duplicate": "already ran"}.get(
        body.decision, "ran"
    )
    head = f"{mention(user_id)} {verb} *{escape(route)}* on {build}"
    counts = f"{len(started)} started" + (f", {len(failed)} failed" if failed else "")
    if body.decision == "dry_run":
        counts = f"{len(executions)} would start; nothing was started (no Revyl token)"
    elif body.decision == "duplicate":
        counts += " (Slack sent this command twice: nothing new was started)"
    footer = []
    version_id = (body.build or {}).get("build_version_id")
    if version_id:
        footer.append(f"Revyl build {code(version_id)}")
    if started:
        footer.append(f"progress: {code(command + ' status <execution id>')}")
    blocks = [section(f"{head}: {counts}"), *sections(map(execution_line, executions))]
    blocks += [context(escape(note)) for note in notes]
    if footer:
        blocks.append(context(" · ".join(footer)))
    text = f"{mention(user_id)} {verb} {escape(route)} on {_plain(build)}: {counts}"
    response_type: ResponseType = "ephemeral" if body.decision == "dry_run" else "in_channel"
    return message(response_type, text, blocks)


def run_pending(user_id: str, route: str, build: str, tests: int, workflows: int) -> Message:
    """The immediate answer when `run` cannot finish inside Slack's 3 seconds."""
    what = " and ".join(
        f"{count} {noun}{'s' if count != 1 else ''}"
        for count, noun in ((tests, "test"), (workflows, "workflow"))
        if count
    )
    text = (
        f"{mention(user_id)} is running *{escape(route)}* on {build}: starting {what}… "
        "the report links follow in this channel."
    )
    return message("in_channel", _plain(text), [section(text)])


def status_result(
    kind: Literal["test", "workflow"], execution_id: str, data: dict[str, Any], report_url: str
) -> Message:
    """The answer to `status`: status, progress, pass/fail and the report link."""
    status = str(data.get("status") or "unknown")
    outcome = read_run_state(kind, data).outcome
    verdict = "failed" if outcome == "cancelled" else outcome  # as Revyl's CLI shows it
    icon = {"passed": ":white_check_mark:", "failed": ":x:"}.get(
        verdict, ":hourglass_flowing_sand:"
    )
    progress = _progress(data.get("progress"))
    details = [f"status *{escape(status)}*"]
    if progress is not None:
        details.append(f"{progress}%")
    details.append(_steps(kind, data))
    lines = [
        f"{icon} {kind.capitalize()} execution {code(execution_id)}: "
        f"*{'still running' if verdict == 'running' else verdict}*",
        " · ".join(d for d in details if d),
    ]
    if data.get("error_message"):
        lines.append(f"error: {escape(str(data['error_message']))}")
    if is_uuid(execution_id):
        lines.append(link(report_url, "Open the report"))
    text = (
        f"{kind.capitalize()} execution {execution_id}: {status}"
        + (f", {progress}%" if progress is not None else "")
        + f", {verdict} · {report_url}"
    )
    return message("ephemeral", escape(text), [section("\n".join(lines))])


def status_pending(execution_id: str) -> Message:
    text = f"Asking Revyl about {execution_id}… the answer follows."
    return notice(text)


def routes_list(command: str, routes: Sequence[Route]) -> Message:
    """The answer to `routes`: each route a user may run, its tests and workflows."""
    if not routes:
        return notice("No routes are configured.")
    lines = [f"*Routes you can run* ({code(command + ' run <route> [<version label>]')}):"]
    for route in routes:
        spec = route.build
        where = (
            f"builds by label in Revyl app {code(spec.app_id)}"
            if spec.app_id
            else "runs on the tests' attached builds"
        )
        lines.append(f"• *{escape(route.name)}* — {where}")
        lines += [f"      test {code(t)}" for t in route.tests]
        lines += [f"      workflow {code(w)}" for w in route.workflows]
    names = ", ".join(route.name for route in routes)
    return message("ephemeral", escape(f"Routes you can run: {names}"), sections(lines))


def _progress(value: Any) -> int | None:
    try:
        return round(float(value))
    except (TypeError, ValueError):
        return None


def _steps(kind: str, data: dict[str, Any]) -> str:
    if kind == "workflow":
        total = data.get("total_tests")
        if total is None:
            return ""
        passed, failed = data.get("passed_tests") or 0, data.get("failed_tests") or 0
        done = data.get("completed_tests") or 0
        return f"{done}/{total} tests done ({passed} passed, {failed} failed)"
    total = data.get("total_steps")
    if not total:
        return ""
    step = f"step {data.get('steps_completed') or 0}/{total}"
    current = data.get("current_step")
    return f"{step} ({escape(str(current))})" if current else step


def _plain(markdown: str) -> str:
    """A mrkdwn string as fallback text: emphasis and code marks dropped, entities kept."""
    return markdown.replace("*", "").replace("`", "")
