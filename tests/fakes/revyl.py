"""A fake Revyl backend on loopback (see /work/shared/reference/revyl-api.md).

Endpoints (paths under /api/v1):

- POST execution/api/execute_test_id_async      {test_id, ...} -> {status, message, id, task_id}
- POST execution/api/execute_workflow_id_async  {workflow_id, ...} -> same shape
- POST apps/{app_id}/builds/from-url            {from_url, version, ...} -> BuildResponse,
  idempotent per (app_id, version): a repeat returns the same id with was_reused=true
- GET  apps/{app_id}/builds?search=&page=&page_size=  -> PaginatedBuildsResponse, newest
  first; `search` is a case-insensitive SUBSTRING match (clients must exact-match)
- GET  tests/get_test_execution_task?task_id=   -> TestStatusResponse, or 404
- GET  workflows/status/{task_id}                -> WorkflowStatusResponse, or 404

Anything else is 404 {"detail": "Not Found"} (405 for a known path with the wrong method).
Validation errors are FastAPI-style 422s. With `token=...`, requests without
`Authorization: Bearer <token>` get 401 {"detail": "Invalid API key"}.

Fault injection: `fail(path_part, *behaviours)` queues behaviours consumed one per
matching request; `fail_always(path_part, behaviour)` applies until `reset()`.
Scripted faults take precedence over auth and routing. `RecordedCall.started` tells
whether the fake really processed the request (e.g. created a run) — see `started()`.

Run as a process: python -m tests.fakes.revyl --port 0 --latency 0.1 [--token T]
prints `READY http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import math
import re
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from tests.fakes._http import (
    RESET,
    FakeHTTPServer,
    RecordedCall,
    Reply,
    json_reply,
    run_until_signal,
)
from tests.support.net import LOOPBACK, closed_port_url

__all__ = [
    "EXECUTE_TEST_PATH",
    "EXECUTE_WORKFLOW_PATH",
    "TEST_STATUS_PATH",
    "Behaviour",
    "Delay",
    "FakeRevyl",
    "Hang",
    "RecordedCall",
    "Reset",
    "Status",
    "Trickle",
    "closed_port_url",
]

EXECUTE_TEST_PATH = "/api/v1/execution/api/execute_test_id_async"
EXECUTE_WORKFLOW_PATH = "/api/v1/execution/api/execute_workflow_id_async"
TEST_STATUS_PATH = "/api/v1/tests/get_test_execution_task"
OWNER_ID = "00000000-0000-4000-8000-00000000f00d"
MAX_PAGE_SIZE = 100


# --- scripted fault behaviours ------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Answer with this status instead of processing (e.g. 429 + Retry-After, 503, 402).

    `processed=True` processes the request first (a run IS created), then answers
    with this status anyway: the ambiguous "it worked but you saw an error" case.
    `body` (raw bytes, e.g. an HTML error page) overrides `json_body`.
    """

    code: int
    json_body: Any = None
    headers: dict[str, str] | None = None
    processed: bool = False
    body: bytes | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Reset:
    """Read the request fully, then abort the connection (RST): the client sees a reset.

    `processed=True` processes the request first (the run IS created) before resetting.
    """

    processed: bool = False


@dataclass(frozen=True)
class Hang:
    """Process the request, then wait `seconds` before answering normally.

    Meant to trip a client's read timeout: the run IS created (started=True).
    `stop()` cuts the wait short.
    """

    seconds: float = 30.0


@dataclass(frozen=True)
class Trickle:
    """Process the request (the run IS created), then send the answer one byte every `pause`
    seconds: each read is quick, the whole answer slow (a Revyl or proxy that dribbles)."""

    pause: float = 0.1


@dataclass(frozen=True)
class Delay:
    """Wait `seconds`, then answer normally (a slow but successful Revyl)."""

    seconds: float


Behaviour = Status | Reset | Hang | Delay | Trickle


# --- helpers ------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _new_id() -> str:
    return str(uuid.uuid4())


def _not_found(detail: str = "Not Found") -> Reply:
    return json_reply(404, {"detail": detail})


def _validation_error(errors: list[dict[str, Any]]) -> Reply:
    return json_reply(422, {"detail": errors})


def _missing(location: str, names: list[str], given: Any) -> Reply:
    return _validation_error(
        [
            {
                "type": "missing",
                "loc": [location, name],
                "msg": "Field required",
                "input": given,
            }
            for name in names
        ]
    )


def _object_body(call: RecordedCall, required: list[str]) -> dict[str, Any] | Reply:
    """The JSON object body, or the 422 FastAPI would give for it."""
    if call.json is None and call.body:
        return _validation_error(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", 0],
                    "msg": "JSON decode error",
                    "input": {},
                }
            ]
        )
    if call.json is None:
        return _missing("body", required, None)
    if not isinstance(call.json, dict):
        return _validation_error(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": call.json,
                }
            ]
        )
    missing = [name for name in required if call.json.get(name) is None]
    return _missing("body", missing, call.json) if missing else call.json


def _int_query(call: RecordedCall, name: str, default: int, high: int | None) -> int | Reply:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (high is not None and value > high):
        limit = f"between 1 and {high}" if high is not None else "at least 1"
        return _validation_error(
            [
                {
                    "type": "int_range",
                    "loc": ["query", name],
                    "msg": f"Input should be {limit}",
                    "input": raw,
                }
            ]
        )
    return value


# --- the fake -----------------------------------------------------------------

Handler = Callable[[RecordedCall, dict[str, str]], Reply]


class FakeRevyl(FakeHTTPServer):
    name = "fake-revyl"

    def __init__(
        self,
        token: str | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        super().__init__(host=host, port=port, latency=latency)
        self.token = token
        """When set, requests need `Authorization: Bearer <token>`; may be changed at runtime."""
        self._builds: dict[str, list[dict[str, Any]]] = {}
        self._executions: dict[str, dict[str, Any]] = {}
        self._scripted: list[tuple[str, deque[Behaviour]]] = []
        self._always: list[tuple[str, Behaviour]] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(re.escape(EXECUTE_TEST_PATH)), self._execute_test),
            (
                "POST",
                re.compile(re.escape(EXECUTE_WORKFLOW_PATH)),
                self._execute_workflow,
            ),
            (
                "POST",
                re.compile(r"/api/v1/apps/(?P<app_id>[^/]+)/builds/from-url"),
                self._from_url,
            ),
            (
                "GET",
                re.compile(r"/api/v1/apps/(?P<app_id>[^/]+)/builds"),
                self._list_builds,
            ),
            ("GET", re.compile(re.escape(TEST_STATUS_PATH)), self._test_status),
            (
                "GET",
                re.compile(r"/api/v1/workflows/status/(?P<task_id>[^/]+)"),
                self._workflow_status,
            ),
        ]

    # --- scripting and seeding ---------------------------------------------------

    def fail(self, path_part: str, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per request whose path contains `path_part`."""
        with self._lock:
            self._scripted.append((path_part, deque(behaviours)))

    def fail_always(self, path_part: str, behaviour: Behaviour) -> None:
        """Apply `behaviour` to every matching request (after any queued ones) until reset()."""
        with self._lock:
            self._always.append((path_part, behaviour))

    def clear_faults(self) -> None:
        with self._lock:
            self._scripted.clear()
            self._always.clear()

    def reset(self) -> None:
        """Forget calls, builds, executions and scripted faults."""
        with self._lock:
            super().reset()
            self._builds.clear()
            self._executions.clear()
            self.clear_faults()

    def add_build(self, app_id: str, version: str, **fields: Any) -> str:
        """Seed a build (as if uploaded earlier); returns its id (the build_version_id)."""
        with self._lock:
            existing = self._find_build(app_id, version)
            if existing is not None:
                return str(existing["id"])
            return str(self._new_build(app_id, version, fields)["id"])

    def builds(self, app_id: str) -> list[dict[str, Any]]:
        """Builds of an app, oldest first (copies)."""
        with self._lock:
            return [dict(build) for build in self._builds.get(app_id, [])]

    def set_status(self, task_id: str, **fields: Any) -> None:
        """Update the status answer for a run (creates a test run if unknown)."""
        with self._lock:
            run = self._executions.get(task_id)
            if run is None:
                run = self._executions[task_id] = {
                    "kind": "test",
                    "request": {},
                    "status": _test_status(task_id, {}),
                }
            run["status"].update(fields)

    def execution(self, task_id: str) -> dict[str, Any] | None:
        """The stored run: {"kind": "test"|"workflow", "request": body, "status": {...}}."""
        with self._lock:
            run = self._executions.get(task_id)
            return None if run is None else {**run, "status": dict(run["status"])}

    def started(self, path_part: str) -> list[RecordedCall]:
        """Calls to `path_part` that Revyl really processed (runs that started)."""
        return [call for call in self.calls_to(path_part) if call.started]

    # --- request handling ------------------------------------------------------------

    def handle(self, call: RecordedCall) -> Reply:
        fault = self._next_fault(call.path)
        if isinstance(fault, Reset):
            if fault.processed:
                self._process(call)
            return RESET
        if isinstance(fault, Status):
            if fault.processed:
                self._process(call)
            return _status_reply(fault)
        reply = self._process(call)
        if isinstance(fault, Hang | Delay):
            reply = replace(reply, delay=fault.seconds)
        if isinstance(fault, Trickle):
            reply = replace(reply, trickle=fault.pause)
        return reply

    def _next_fault(self, path: str) -> Behaviour | None:
        with self._lock:
            for part, queue in self._scripted:
                if part in path and queue:
                    return queue.popleft()
            for part, behaviour in self._always:
                if part in path:
                    return behaviour
        return None

    def _process(self, call: RecordedCall) -> Reply:
        reply = self._authorize(call) or self._route(call)
        call.started = 200 <= reply.status < 300
        return reply

    def _authorize(self, call: RecordedCall) -> Reply | None:
        if self.token is None or call.headers.get("authorization") == f"Bearer {self.token}":
            return None
        return json_reply(401, {"detail": "Invalid API key"})

    def _route(self, call: RecordedCall) -> Reply:
        path = call.path.rstrip("/") or "/"
        wrong_method = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == call.method:
                return handler(call, match.groupdict())
            wrong_method = True
        if wrong_method:
            return json_reply(405, {"detail": "Method Not Allowed"})
        return _not_found()

    # --- endpoints -------------------------------------------------------------------

    def _execute_test(self, call: RecordedCall, _: dict[str, str]) -> Reply:
        body = _object_body(call, ["test_id"])
        if isinstance(body, Reply):
            return body
        task_id = self._new_run("test", body, _test_status)
        return json_reply(
            200,
            {
                "status": "queued",
                "message": "Test execution queued",
                "id": task_id,
                "task_id": task_id,
            },
        )

    def _execute_workflow(self, call: RecordedCall, _: dict[str, str]) -> Reply:
        body = _object_body(call, ["workflow_id"])
        if isinstance(body, Reply):
            return body
        task_id = self._new_run("workflow", body, _workflow_status)
        return json_reply(
            200,
            {
                "status": "queued",
                "message": "Workflow execution queued",
                "id": task_id,
                "task_id": task_id,
            },
        )

    def _from_url(self, call: RecordedCall, params: dict[str, str]) -> Reply:
        body = _object_body(call, ["from_url", "version"])
        if isinstance(body, Reply):
            return body
        app_id, version = params["app_id"], str(body["version"])
        with self._lock:
            existing = self._find_build(app_id, version)
            if existing is not None:
                return json_reply(200, {**existing, "was_reused": True})
            build = self._new_build(app_id, version, {"metadata": dict(body.get("metadata") or {})})
        return json_reply(200, build)

    def _list_builds(self, call: RecordedCall, params: dict[str, str]) -> Reply:
        page = _int_query(call, "page", 1, None)
        page_size = _int_query(call, "page_size", 20, MAX_PAGE_SIZE)
        if isinstance(page, Reply):
            return page
        if isinstance(page_size, Reply):
            return page_size
        needle = call.query.get("search", "").lower()
        with self._lock:
            matching = [
                {**build, "is_current": False}
                for build in reversed(self._builds.get(params["app_id"], []))
                if needle in build["version"].lower()
                or needle in (build["package_name"] or "").lower()
            ]
        return json_reply(200, _page(matching, page, page_size))

    def _test_status(self, call: RecordedCall, _: dict[str, str]) -> Reply:
        task_id = call.query.get("task_id")
        if not task_id:
            return _missing("query", ["task_id"], None)
        return self._status_of(task_id, "test")

    def _workflow_status(self, call: RecordedCall, params: dict[str, str]) -> Reply:
        return self._status_of(params["task_id"], "workflow")

    # --- state -----------------------------------------------------------------------

    def _status_of(self, task_id: str, kind: str) -> Reply:
        with self._lock:
            run = self._executions.get(task_id)
            if run is None or run["kind"] != kind:
                return _not_found("Task not found")
            return json_reply(200, dict(run["status"]))

    def _new_run(
        self,
        kind: str,
        body: dict[str, Any],
        make_status: Callable[[str, dict[str, Any]], dict[str, Any]],
    ) -> str:
        task_id = _new_id()
        with self._lock:
            self._executions[task_id] = {
                "kind": kind,
                "request": body,
                "status": make_status(task_id, body),
            }
        return task_id

    def _find_build(self, app_id: str, version: str) -> dict[str, Any] | None:
        for build in self._builds.get(app_id, []):
            if build["version"] == version:
                return build
        return None

    def _new_build(self, app_id: str, version: str, fields: dict[str, Any]) -> dict[str, Any]:
        build_id = _new_id()
        build: dict[str, Any] = {
            "id": build_id,
            "app_id": app_id,
            "version": version,
            "artifact_url": f"s3://fake/{app_id}/{build_id}",
            "package_name": None,
            "metadata": {},
            "owner": OWNER_ID,
            "uploaded_at": _now(),
            "download_url": None,
            "was_reused": False,
            "artifact_kind": None,
            "cloud_agent_conversation": None,
            **fields,
        }
        self._builds.setdefault(app_id, []).append(build)
        return build


def _status_reply(fault: Status) -> Reply:
    if fault.body is not None:
        body = fault.body
    else:
        payload = (
            fault.json_body if fault.json_body is not None else {"detail": _phrase(fault.code)}
        )
        body = json_reply(fault.code, payload).body
    return Reply(
        status=fault.code,
        body=body,
        headers=tuple((fault.headers or {}).items()),
        content_type=fault.content_type,
    )


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _page(items: list[dict[str, Any]], page: int, page_size: int) -> dict[str, Any]:
    total = len(items)
    total_pages = math.ceil(total / page_size)
    start = (page - 1) * page_size
    return {
        "items": items[start : start + page_size],
        "total": total,
        "page": page,
        "page_size": page_size,
        "total_pages": total_pages,
        "has_next": page < total_pages,
        "has_previous": page > 1,
    }


def _test_status(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": task_id,
        "status": "running",
        "success": None,
        "progress": 40.0,
        "current_step": "Open the app",
        "current_step_index": 1,
        "total_steps": 3,
        "steps_completed": 1,
        "error_message": None,
        "execution_errors": None,
        "validation_failures": None,
        "started_at": _now(),
        "completed_at": None,
        "execution_time_seconds": None,
        "test_id": body.get("test_id"),
        "test_history_id": _new_id(),
        "workflow_run_id": None,
        "metadata": {},
    }


def _workflow_status(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": body.get("workflow_id"),
        "execution_id": task_id,
        "status": "running",
        "progress": 40.0,
        "completed_tests": 0,
        "total_tests": 1,
        "passed_tests": 0,
        "failed_tests": 0,
        "started_at": _now(),
        "error_message": None,
        "metadata": {},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.revyl", description="Serve a fake Revyl API."
    )
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every response"
    )
    parser.add_argument("--token", default=None, help="require Authorization: Bearer TOKEN")
    args = parser.parse_args(argv)
    run_until_signal(FakeRevyl(args.token, host=args.host, port=args.port, latency=args.latency))


if __name__ == "__main__":
    main()
