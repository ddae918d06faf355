"""Revyl's API without I/O: requests as data, answers as data or a typed exception.

`decipher_response(status, headers, body, now)` is the one place that reads an answer. Its
exceptions say whether Revyl can have acted on the request, which is what the retry rules depend on:
`NotStarted` errors (429, 503, a connection that never opened) are safe to retry;
`MaybeStarted` errors (a timeout after sending, a reset, 500/502/504) are not, for execute calls.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from relay.jsontext import read_json
from relay.models import Build
from relay.text import cut

EXECUTE_TEST = "/api/v1/execution/api/execute_test_id_async"
EXECUTE_WORKFLOW = "/api/v1/execution/api/execute_workflow_id_async"
TEST_STATUS = "/api/v1/tests/get_test_execution_task"
WORKFLOW_STATUS = "/api/v1/workflows/status/{task_id}"
PLATFORM_KEYS = {"ios": "ios_build", "android": "android_build"}
MAX_HEADER_VALUE = 256  # characters of one X-CI-* value: a commit, branch or URL fits
MAX_ERROR_MESSAGE = 500  # characters of Revyl's error text kept


@dataclass(frozen=True)
class ApiRequest:
    """One call to Revyl, as data. `idempotent` calls may be retried after an ambiguous failure."""

    method: Literal["GET", "POST"]
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = False
    slow: bool = False  # from-url: Revyl downloads the artifact before answering

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            **({"params": self.params} if self.params else {}),
            "headers": {"Authorization": "Bearer ***", **self.headers},
            **({"body": self.json} if self.json is not None else {}),
        }


class RevylError(Exception):
    """Revyl refused or failed a call. `status` is Revyl's HTTP status (None: no answer)."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class NotStarted(RevylError):
    """Revyl cannot have acted on the request: safe to retry."""


class MaybeStarted(RevylError):
    """Revyl may have acted on the request: retrying an execute call could start a second run."""


class Refused(RevylError):
    """A final 4xx (bad token, no device time, unknown test, validation): retrying will not help."""


def ci_headers(build: Build, client_name: str) -> dict[str, str]:
    """`X-Revyl-Client` and the `X-CI-*` headers; unknown values are left out, not sent empty."""
    values = {
        "X-Revyl-Client": client_name,
        "X-CI-System": build.system,
        "X-CI-Commit-SHA": build.commit,
        "X-CI-Branch": build.branch,
        "X-CI-PR-Number": str(build.pr_number) if build.pr_number else None,
        "X-CI-Run-URL": build.build_url,
        "X-CI-Run-ID": build.run_id,
        "X-CI-Repository": build.repository,
    }
    cleaned = {name: header_value(value) for name, value in values.items() if value}
    return {name: value for name, value in cleaned.items() if value}


def header_value(value: str) -> str:
    """A payload value made safe for a header: control characters (CR, LF, NUL...) removed, cut
    to MAX_HEADER_VALUE characters (a signed payload may name a 100 KB branch). Non-ASCII text
    stays; the client sends it as UTF-8, as Revyl's own CLI does."""
    if not value.isprintable():
        value = "".join(c for c in value if c.isprintable())
    return value.strip()[:MAX_HEADER_VALUE].strip()


def build_metadata(build: Build) -> dict[str, Any]:
    """Metadata stored with an ingested build, in the keys Revyl's own clients use."""
    values = {
        "source": "revyl-relay",
        "ci_system": build.system,
        "commit_sha": build.commit,
        "branch": build.branch,
        "pr_number": build.pr_number,
        "ci_run_url": build.build_url,
        "ci_run_id": build.run_id,
        "scm_repo": build.repository,
        "platform": build.platform,
        "app_identifier": build.app,
        "app_version": build.version,
        "build_number": build.build_number,
    }
    return {key: value for key, value in values.items() if value not in (None, "")}


def execute_test(
    test_id: str, build_version_id: str | None, build: Build, client_name: str
) -> ApiRequest:
    body: dict[str, Any] = {"test_id": test_id, "source": "ci_cd"}
    if build_version_id:
        body["build_version_id"] = build_version_id
    return ApiRequest("POST", EXECUTE_TEST, json=body, headers=ci_headers(build, client_name))


def execute_workflow(
    workflow_id: str,
    build: Build,
    client_name: str,
    app_id: str | None = None,
    pinned_version: str | None = None,
) -> ApiRequest:
    body: dict[str, Any] = {"workflow_id": workflow_id}
    if app_id and build.platform:
        platform_app = {"app_id": app_id, "pinned_version": pinned_version}
        body["build_config"] = {PLATFORM_KEYS[build.platform]: platform_app}
        body["override_build_config"] = True
    return ApiRequest("POST", EXECUTE_WORKFLOW, json=body, headers=ci_headers(build, client_name))


def ingest_build(
    app_id: str, from_url: str, version: str, build: Build, headers: Mapping[str, str] | None
) -> ApiRequest:
    body: dict[str, Any] = {
        "from_url": from_url,
        "version": version,
        "metadata": build_metadata(build),
    }
    if headers:
        body["headers"] = dict(headers)
    path = f"/api/v1/apps/{app_id}/builds/from-url"
    return ApiRequest("POST", path, json=body, idempotent=True, slow=True)


def list_builds(app_id: str, search: str, page: int, page_size: int = 100) -> ApiRequest:
    params = {"search": search, "page": str(page), "page_size": str(page_size)}
    return ApiRequest("GET", f"/api/v1/apps/{app_id}/builds", params=params, idempotent=True)


def execution_status(task_id: str) -> ApiRequest:
    return ApiRequest("GET", TEST_STATUS, params={"task_id": task_id}, idempotent=True)


def workflow_status(task_id: str) -> ApiRequest:
    path = WORKFLOW_STATUS.format(task_id=quote(task_id, safe=""))
    return ApiRequest("GET", path, idempotent=True)


def report_url(app_url: str, kind: Literal["test", "workflow"], task_id: str) -> str:
    """The report page of an execution. The id is Revyl's answer, quoted like any value."""
    return f"{app_url}/{kind}s/report?taskId={quote(task_id, safe='')}"


def error_message(body: bytes) -> str:
    """Revyl's own words from an error body, whatever its shape, in at most MAX_ERROR_MESSAGE
    characters (they travel into answers, logs and reports)."""
    try:
        data = read_json(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:200] or "no message"
    if isinstance(data, dict):
        for key in ("detail", "message", "error", "errors"):
            if key in data:
                return cut(_flatten(data[key]), MAX_ERROR_MESSAGE)
    return cut(_flatten(data), MAX_ERROR_MESSAGE)


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _flatten(value.get("message") or value.get("msg") or json.dumps(value))
    if isinstance(value, list):
        parts = []
        for item in value:
            where = ".".join(str(p) for p in item.get("loc", ())) if isinstance(item, dict) else ""
            parts.append(f"{where}: {_flatten(item)}" if where else _flatten(item))
        return "; ".join(parts)
    return json.dumps(value)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait, from `Retry-After` in seconds or as an HTTP date (`now`: Unix time)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value[:9])  # seconds; the client caps what it honours
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # malformed: ignore it, as RFC 9110 allows
    if parsed.tzinfo is None:
        return None
    return max(0.0, parsed.timestamp() - now)


def decipher_response(status: int, headers: Mapping[str, str], body: bytes, now: float) -> Any:
    """Revyl's answer as data, or the exception that says what happened. `now` (Unix time)
    dates a `Retry-After` given as an HTTP date."""
    if 200 <= status < 300:
        try:
            return read_json(body) if body else None
        except ValueError:
            raise MaybeStarted(
                f"Revyl answered {status} with a body that is not JSON", status
            ) from None
    message = error_message(body)
    if status in (429, 503):
        raise NotStarted(f"Revyl answered {status}: {message}", status, retry_after(headers, now))
    if status >= 500:
        raise MaybeStarted(f"Revyl answered {status}: {message}", status)
    raise Refused(f"Revyl refused ({status}): {message}", status)


@dataclass(frozen=True)
class Started:
    execution_id: str
    status: str


def read_started(data: Any) -> Started:
    """The execution id from an execute answer. A 200 with status `failed` is a failed dispatch."""
    if not isinstance(data, dict):
        raise MaybeStarted("Revyl's answer has no execution id")
    execution_id = data.get("task_id") or data.get("id")
    status = str(data.get("status") or "queued")
    if status == "failed":
        raise Refused(f"Revyl could not start it: {data.get('message') or 'status failed'}", 200)
    if not execution_id:
        raise MaybeStarted("Revyl's answer has no execution id")
    return Started(str(execution_id), status)


def read_build_page(data: Any, version: str) -> tuple[str | None, bool]:
    """The id of the build labelled exactly `version` on this page, and whether more follow."""
    if not isinstance(data, dict):
        raise MaybeStarted("Revyl's build list is not a JSON object")
    items = data.get("items") or []
    match = next((i for i in items if isinstance(i, dict) and i.get("version") == version), None)
    return (str(match["id"]) if match and match.get("id") else None), bool(data.get("has_next"))


def read_ingested(data: Any) -> str:
    if not isinstance(data, dict) or not data.get("id"):
        raise MaybeStarted("Revyl's from-url answer has no build id")
    return str(data["id"])


# A run's state, by the rules Revyl's own CLI applies to the status endpoints' answers.

TERMINAL = frozenset({"completed", "failed", "cancelled", "timeout", "success", "failure"})
PASSED_STATUSES = frozenset({"completed", "success"})
RunOutcome = Literal["running", "passed", "failed", "cancelled"]


@dataclass(frozen=True)
class RunState:
    """One run (test or workflow execution) as Revyl reports it: its own status word, and
    what that means: still `running`, or finished `passed`, `failed` or `cancelled`."""

    status: str
    outcome: RunOutcome
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.outcome != "running"


def read_run_state(kind: Literal["test", "workflow"], data: Any) -> RunState:
    """A status answer read as Revyl's CLI reads it (a test: `success` once it has finished,
    else completed without an error message; a workflow: completed with no failed test).
    An answer that is not an object is a run still running: it says nothing finished."""
    if not isinstance(data, dict):
        return RunState("", "running")
    status = str(data.get("status") or "").lower()
    error = _text(data.get("error_message"))
    if status == "cancelled":
        return RunState(status, "cancelled", error)
    if kind == "workflow":
        return RunState(status, _workflow_outcome(status, data), error)
    success = data.get("success")
    finished = status in TERMINAL or (not status and success is not None)
    if not finished:
        return RunState(status, "running", error)
    if isinstance(success, bool):
        return RunState(status, "passed" if success else "failed", error)
    passed = status in PASSED_STATUSES and not error
    return RunState(status, "passed" if passed else "failed", error)


def _workflow_outcome(status: str, data: dict[str, Any]) -> RunOutcome:
    if status in PASSED_STATUSES:
        return "failed" if data.get("failed_tests") else "passed"
    return "failed" if status in TERMINAL else "running"


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value not in (None, "") else None
