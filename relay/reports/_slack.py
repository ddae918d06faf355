"""Slack, pure: a check's messages as Block Kit, and the Web API's answers read.

Nothing that comes from Revyl or from a build's payload becomes a link, a mention or
formatting: such text is escaped (`&`, `<`, `>`), errors are shown as code, and every text
object is `verbatim` (Slack does not turn bare URLs, channel names or `@here` into links or
mentions). The only links are the relay's own report links, `<url|report>`, with the URL made
safe for Slack's link syntax. The only mention is the id of the user who typed a command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from relay import slack_blocks as blocks
from relay.reports._common import HttpAnswer, build_label, cap, capped_wait, one_line, remote_code
from relay.reports.base import Refused
from relay.revyl.sansio import retry_after
from relay.tasks import RetryLater
from relay.verdicts.check import Check, Run, describe_outcome, summary

Message = dict[str, Any]

VERDICT_ICONS = {"passed": ":white_check_mark:", "failed": ":x:", "error": ":warning:"}
RUN_ICONS = {
    "passed": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":warning:",
    "not_started": ":warning:",
    "running": ":hourglass_flowing_sand:",
}
MAX_ERROR = 300  # characters of a run's error shown
USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"  # RFC 3986 characters, `|`, `<`, `>` and spaces excluded
RETRIED = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
AUTH = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
MESSAGE_GONE = {"message_not_found", "cant_update_message"}


# text


def link(url: str | None, label: str) -> str:
    """`<url|label>` for an http(s) URL, else the label alone."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return label
    safe = quote(str(url), safe=URL_SAFE).replace("&", "&amp;")
    return f"<{safe}|{label}>"


def error_text(text: str | None) -> str:
    """A run's error as inline code: one line, capped, escaped."""
    return blocks.code(cap(one_line(text or ""), MAX_ERROR))


def run_name(run: Run, *, full: bool = False) -> str:
    ident = run.target_id if full else run.target_id[:8]
    return f"{run.kind} {blocks.code(ident or '?')}"


def on_build(check: Check) -> str:
    label = build_label(check.build)
    return f" on {blocks.code(label)}" if label else ""


def build_line(check: Check) -> str:
    """The build in a context line: platform, profile, branch, short commit, source."""
    build = check.build
    parts = [build.get(key) for key in ("platform", "profile", "branch")]
    shown = [blocks.escape(str(part)) for part in parts if part]
    if build.get("commit"):
        shown.append(blocks.code(str(build["commit"])[:7]))
    if build.get("source"):
        shown.append(f"from {blocks.escape(str(build['source']))}")
    return " · ".join(shown)


def mention(user_id: Any) -> str:
    """`<@U…> ` for a Slack user id (the command's caller), else nothing."""
    return f"<@{user_id}> " if isinstance(user_id, str) and USER_ID.fullmatch(user_id) else ""


def verbatim(block: Message) -> Message:
    """The block with each of its mrkdwn texts taken as written (no auto links or mentions)."""
    if "text" in block:
        return {**block, "text": {**block["text"], "verbatim": True}}
    elements = [{**element, "verbatim": True} for element in block.get("elements", [])]
    return {**block, "elements": elements}


def compose(text: str, parts: Iterable[Message]) -> Message:
    chosen = [verbatim(block) for block in parts][: blocks.MAX_BLOCKS]
    return {"text": text, "blocks": chosen}


# the messages


def run_line(run: Run, *, finished: bool, with_error: bool = False) -> str:
    if run.outcome == "not_started":
        return f"{RUN_ICONS['not_started']} {run_name(run)} did not start: {error_text(run.error)}"
    icon = RUN_ICONS[run.outcome] if finished else "•"
    outcome = f" {describe_outcome(run)}" if finished else ""
    line = f"{icon} {run_name(run)}{outcome} · {link(run.report_url, 'report')}"
    if with_error and run.error and run.outcome != "passed":
        line += f"\n      {error_text(run.error)}"
    return line


def started_message(check: Check, who: str = "") -> Message:
    """The message of a check that starts: the route, the build, one line per run."""
    route = blocks.escape(check.route)
    count = len(check.started_runs)
    runs = f"{count} run{'s' if count != 1 else ''}"
    head = f":hourglass_flowing_sand: {who}*{route}*: {runs} started{on_build(check)}"
    lines = [run_line(run, finished=False) for run in check.runs.values()]
    parts = [blocks.section(head), *blocks.sections(lines)]
    if build_line(check):
        parts.append(blocks.context(build_line(check)))
    label = build_label(check.build)
    text = f"{check.route}: {runs} started" + (f" on {label}" if label else "")
    return compose(blocks.escape(text), parts)


def verdict_message(check: Check, who: str = "", *, with_failures: bool = False) -> Message:
    """The check's verdict: ✅/❌/⚠, the counts, each run's outcome and report link (and,
    `with_failures`, the errors of the runs that did not pass: all in one message)."""
    verdict = check.verdict or "error"
    route = blocks.escape(check.route)
    head = f"{VERDICT_ICONS[verdict]} {who}*{route}* {verdict}: {counts(check)}{on_build(check)}"
    lines = [run_line(run, finished=True, with_error=with_failures) for run in check.runs.values()]
    parts = [blocks.section(head), *blocks.sections(lines)]
    if build_line(check):
        parts.append(blocks.context(build_line(check)))
    text = f"{check.route} {verdict}: {summary(check)}"
    return compose(blocks.escape(text), parts)


def failures_message(check: Check) -> Message:
    """The thread reply of a failed (or errored) check: each run that did not pass, its error
    and its report."""
    bad = failed_runs(check)
    names = ", ".join(f"{run.kind} {run.target_id}" for run in bad)
    text = f"{len(bad)} of {len(check.runs)} did not pass: {names}"
    return compose(blocks.escape(text), blocks.sections(failure_lines(check)))


def failure_lines(check: Check) -> list[str]:
    lines = []
    for run in failed_runs(check):
        line = f"{RUN_ICONS[run.outcome]} {run_name(run, full=True)} {describe_outcome(run)}"
        if run.report_url:
            line += f" · {link(run.report_url, 'report')}"
        if run.error:
            line += f"\n      {error_text(run.error)}"
        lines.append(line)
    return lines


def failed_runs(check: Check) -> list[Run]:
    return [run for run in check.runs.values() if run.outcome != "passed"]


def counts(check: Check) -> str:
    passed = sum(run.outcome == "passed" for run in check.runs.values())
    return f"{passed} of {len(check.runs)} passed"


# the answers


class SlackRefused(Refused):
    """Slack answered `{"ok": false, "error": code}` for a reason a retry will not fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Keys:
    """Where the settings a Slack refusal points at live in the config."""

    token: str  # "reports.team.token"
    channel: str  # "reports.team.channel"
    api_url: str


def read_answer(
    method: str, answer: HttpAnswer, now: float, *, keys: Keys, channel: str
) -> dict[str, Any]:
    """The Web API's answer as data, or RetryLater (429, 5xx, Slack's own transient errors),
    or SlackRefused saying what to fix."""
    if answer.status == 429 or answer.status >= 500:
        after = capped_wait(retry_after(answer.headers, now))
        raise RetryLater(f"Slack answered {answer.status} to {method}", after)
    if 300 <= answer.status < 400:
        redirect = (
            f"Slack answered {answer.status} (a redirect, not followed): check {keys.api_url}"
        )
        raise SlackRefused("redirect", redirect)
    data = answer.json()
    if not isinstance(data, dict):
        raise RetryLater(f"Slack answered {answer.status} to {method} without JSON")
    if data.get("ok") is True:
        return data
    code = remote_code(data.get("error"))
    if code in RETRIED:
        after = capped_wait(retry_after(answer.headers, now))
        raise RetryLater(f"Slack answered {code} to {method}", after)
    raise SlackRefused(code, refusal(method, code, keys=keys, channel=channel))


def refusal(method: str, code: str, *, keys: Keys, channel: str) -> str:
    if code == "not_in_channel":
        return (
            f"the Slack app is not in channel {channel} (not_in_channel): invite it to the "
            "channel (/invite @your-app), or give it the chat:write.public scope for a public "
            "channel"
        )
    if code == "channel_not_found":
        return (
            f"Slack knows no channel {channel} the app can see (channel_not_found): check "
            f"{keys.channel} is a channel id (C…), and invite the app to a private channel"
        )
    if code in AUTH:
        return f"Slack refused the token ({code}): check {keys.token}, the app's bot token (xoxb-…)"
    if code == "missing_scope":
        return (
            "the token lacks a scope (missing_scope): add chat:write (and chat:write.public) "
            "under OAuth & Permissions, then reinstall the app"
        )
    if code == "is_archived":
        return f"channel {channel} is archived (is_archived): check {keys.channel}"
    return f"Slack refused {method} ({code})"
