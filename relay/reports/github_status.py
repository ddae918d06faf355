"""A GitHub commit status (`type: github-status`): the verdict beside the commit, in the PR.

    POST {api_url}/repos/{repository}/statuses/{commit}
    {"state": "pending" | "success" | "failure" | "error", "context": "revyl/<route>",
     "description": "<at most 140 characters>", "target_url": "<a Revyl report>"}

`pending` when the check starts (linking the workflow's report, or the only run's), then the
verdict (linking the first failing run's report). A new status with the same context replaces
the one GitHub shows. A build without a commit, or with no repository known (set
`repository:` for sources whose builds carry none), is skipped. 5xx, 429 and rate limits are
retried (`Retry-After`, `x-ratelimit-reset`); 401, 403, 404 and 422 are final, logged with what
to fix. The token goes to `api_url` only: no redirect is followed.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from relay.config import ReportSettings, SecretRef
from relay.models import TEMPLATE_FIELDS
from relay.reports._common import HttpAnswer, api_base_url, build_label, cap, capped_wait, one_line
from relay.reports._http import JsonPoster
from relay.reports.base import Refused, ReportTarget, Sent, Skipped
from relay.revyl.sansio import retry_after
from relay.secrets import SecretReader
from relay.tasks import RetryLater
from relay.verdicts.check import Check, Phase, summary

API_VERSION = "2022-11-28"
MAX_DESCRIPTION = 140
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
SHA = re.compile(r"[0-9a-fA-F]{7,64}")
CONTEXT_FIELDS = TEMPLATE_FIELDS | {"route"}
STATES = {"passed": "success", "failed": "failure", "error": "error"}


def _context_template(value: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad template {value!r}: {exc}") from None
    unknown = sorted(name for name in names if name not in CONTEXT_FIELDS)
    if unknown:
        raise ValueError(
            f"context {value!r} uses unknown fields {unknown}; "
            f"known: {', '.join(sorted(CONTEXT_FIELDS))}"
        )
    if not value.strip():
        raise ValueError("context must not be empty")
    return value


class GitHubStatusSettings(ReportSettings):
    token: SecretRef
    repository: str | None = None  # owner/name; default: the build's
    context: str = "revyl/{route}"
    api_url: str = "https://api.github.com"
    timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("repository")
    @classmethod
    def _owner_and_name(cls, value: str | None) -> str | None:
        if value is not None and not REPOSITORY.fullmatch(value):
            raise ValueError(f"not a repository owner/name: {value!r}")
        return value

    @field_validator("context")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return _context_template(value)

    @field_validator("api_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return api_base_url(value)


@dataclass(frozen=True)
class StatusRequest:
    repository: str
    sha: str
    body: dict[str, str]

    @property
    def path(self) -> str:
        return f"/repos/{self.repository}/statuses/{self.sha}"


# the request, pure


def status_request(
    settings: GitHubStatusSettings, check: Check, phase: Phase
) -> StatusRequest | Skipped:
    """The status to post for the check at `phase`, or why there is none."""
    build = check.build
    commit, repository = build.get("commit"), settings.repository or build.get("repository")
    if not commit:
        return Skipped("the build has no commit to put a status on")
    if not SHA.fullmatch(str(commit)):
        return Skipped(f"the build's commit {str(commit)[:80]!r} is not a commit SHA")
    if not repository:
        return Skipped(
            "no repository: the build names none, so set `repository: owner/name` on the target"
        )
    if not REPOSITORY.fullmatch(str(repository)):
        return Skipped(f"the build's repository {str(repository)[:200]!r} is not owner/name")
    body = {
        "state": state_of(check, phase),
        "context": context_of(settings.context, check),
        "description": description(check, phase),
    }
    link = target_url(check, phase)
    if link:
        body["target_url"] = link
    return StatusRequest(str(repository), str(commit).lower(), body)


def state_of(check: Check, phase: Phase) -> str:
    if phase == "started" or check.verdict is None:
        return "pending"
    return STATES[check.verdict]


def context_of(template: str, check: Check) -> str:
    """The context template filled with the route's name and the build's fields ("" when a
    field is missing)."""
    values = {name: check.build.get(name) for name in TEMPLATE_FIELDS}
    values = {name: "" if value is None else str(value) for name, value in values.items()}
    return template.format_map({**values, "route": check.route})


def description(check: Check, phase: Phase) -> str:
    """At most 140 characters: "3 tests running on 2.4.0 (187)", "2 of 3 passed — test
    1a9e7d2b failed: login failed"."""
    if phase == "started" or check.verdict is None:
        return cap(running_line(check), MAX_DESCRIPTION)
    line = summary(check)
    bad = [run for run in check.runs.values() if run.outcome != "passed"]
    if len(bad) == 1 and bad[0].error:
        line += f": {one_line(bad[0].error)}"
    return cap(line, MAX_DESCRIPTION)


def running_line(check: Check) -> str:
    started = check.started_runs
    tests = sum(run.kind == "test" for run in started)
    workflows = len(started) - tests
    counted = [
        f"{count} {noun}{'s' if count != 1 else ''}"
        for count, noun in ((tests, "test"), (workflows, "workflow"))
        if count
    ]
    line = f"{' and '.join(counted) or 'nothing'} running"
    label = build_label(check.build)
    if label:
        line += f" on {label}"
    never = len(check.runs) - len(started)
    if never:
        line += f"; {never} did not start"
    return line


def target_url(check: Check, phase: Phase) -> str | None:
    """The first failing run's report at a bad verdict; else the workflow's, or the only run's."""
    runs = [run for run in check.runs.values() if is_link(run.report_url)]
    if phase == "finished" and check.verdict in ("failed", "error"):
        for outcome in ("failed", "cancelled", "running", "not_started"):
            bad = next((run for run in runs if run.outcome == outcome), None)
            if bad is not None:
                return bad.report_url
    workflow = next((run for run in runs if run.kind == "workflow"), None)
    if workflow is not None:
        return workflow.report_url
    return runs[0].report_url if len(check.runs) == 1 and runs else None


def is_link(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("https://", "http://"))


# the answer, pure


def read_answer(answer: HttpAnswer, now: float, *, setting: str, request: StatusRequest) -> Sent:
    """GitHub's answer: posted, to be retried (RetryLater), or final (Refused, saying what to
    fix)."""
    status, where = answer.status, f"{request.repository}@{request.sha[:12]}"
    if 200 <= status < 300:
        return Sent(detail=f"{request.body['state']} on {where} ({request.body['context']})")
    message = github_message(answer)
    limited = rate_limit_wait(answer, now)
    if status >= 500 or status == 429 or limited is not None:
        after = limited if limited is not None else capped_wait(retry_after(answer.headers, now))
        raise RetryLater(f"GitHub answered {status} ({message})", after)
    raise Refused(refusal(status, message, setting=setting, request=request))


def rate_limit_wait(answer: HttpAnswer, now: float) -> float | None:
    """Seconds to wait when a 403 or 429 is a rate limit (primary or secondary), else None."""
    if answer.status not in (403, 429):
        return None
    waited = retry_after(answer.headers, now)
    if waited is not None:
        return capped_wait(waited)
    if answer.header("x-ratelimit-remaining") == "0":
        reset = answer.header("x-ratelimit-reset") or ""
        return capped_wait(float(reset) - now) if reset.isdigit() else 60.0
    if "rate limit" in github_message(answer).lower():
        return 60.0  # a secondary rate limit without Retry-After: GitHub asks for a minute
    return None


def refusal(status: int, message: str, *, setting: str, request: StatusRequest) -> str:
    repo, sha = request.repository, request.sha
    if status == 401:
        return f"GitHub refused the token (401 {message}): check {setting}.token"
    if status == 403:
        return (
            f"the token may not post statuses on {repo} (403 {message}): give it the "
            f'repository permission "Commit statuses: write" ({setting}.token)'
        )
    if status == 404:
        return (
            f"GitHub knows no repository {repo} the token can see (404): check "
            f"{setting}.repository and that the token has access to it"
        )
    if status == 422:
        return (
            f"GitHub refused the status for commit {sha} on {repo} (422 {message}): is the "
            "commit pushed to that repository?"
        )
    if 300 <= status < 400:
        return f"GitHub answered {status} (a redirect, not followed): check {setting}.api_url"
    return f"GitHub refused the status ({status} {message})"


def github_message(answer: HttpAnswer) -> str:
    """GitHub's own `message`, short and on one line (or the status's phrase)."""
    data = answer.json()
    message = data.get("message") if isinstance(data, dict) else None
    return cap(one_line(str(message)), 200) if message else "no message"


class GitHubStatusTarget(ReportTarget):
    type = "github-status"
    Settings = GitHubStatusSettings
    settings: GitHubStatusSettings

    def __init__(self, name: str, settings: ReportSettings, secrets: SecretReader) -> None:
        super().__init__(name, settings, secrets)
        self.http = JsonPoster("GitHub", self.settings.timeout)

    def report(self, phase: Phase, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        request = status_request(self.settings, check, phase)
        if isinstance(request, Skipped):
            return request
        token = self.secrets.read(self.settings.token)
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token}",
        }
        answer = self.http.post(self.settings.api_url + request.path, request.body, headers)
        return read_answer(answer, time.time(), setting=f"reports.{self.name}", request=request)
