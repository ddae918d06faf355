"""A fake Revyl backend on loopback: the endpoints the relay calls, shaped as Revyl documents them.

Endpoints (paths under /api/v1):

- POST execution/api/execute_test_id_async      {test_id, ...} -> {status, message, id, task_id}
- POST execution/api/execute_workflow_id_async  {workflow_id, ...} -> same shape
- POST apps/{app_id}/builds/from-url            {from_url, version, ...} -> BuildResponse,
  idempotent per (app_id, version): a repeat returns the same id with was_reused=true
- GET  apps/{app_id}/builds?search=&page=&page_size=  -> PaginatedBuildsResponse, newest
  first; `search` is a case-insensitive SUBSTRING match (clients must exact-match)
- GET  tests/get_test_execution_task?task_id=   -> TestStatusResponse, or 404
- GET  workflows/status/{task_id}                -> WorkflowStatusResponse, or 404

Run lifecycle: every run follows a script of steps, advancing ONE STEP PER STATUS GET of that
run (the first GET answers the first step; the last step repeats for ever), so a test decides
how many polls a run takes without any clock. A step is a status name, or (name, fields) whose
fields override the answer: `("completed", {"success": False, "error_message": "login failed"})`.
Known names get realistic fields (progress, steps, completed_at...): tests queued, starting,
running, verifying, stopping, completed, failed, cancelled, timeout; workflows queued, setup,
running, completed, failed, cancelled, timeout (a completed workflow has completed_tests =
total_tests and passed_tests = total_tests - failed_tests unless given). Other names (e.g. the
legacy "success") are answered as they are.

- `script_test(test_id, steps)` / `script_workflow(workflow_id, steps)`: the script of runs of
  that test or workflow (fixed at a run's first status GET, so call it before the relay polls);
- `script_run(task_id, steps)`: one run's script, from its first step again;
- `default_test_script` / `default_workflow_script` (attributes): for every other run;
  DEFAULT_SCRIPT = ("running", "completed"): a run passes on its second poll;
- `set_status(task_id, **fields)`: overrides the current answer and stops the script (later
  polls answer the same) — the way to hold a run in a state;
- `polls(task_id)`: how many status GETs the run has answered.
A GET answered by a scripted fault (below) does not advance the run (unless `processed=True`);
until its first poll, `execution(task_id)["status"]` is the queued answer.

Anything else is 404 {"detail": "Not Found"} (405 for a known path with the wrong method).
Validation errors are FastAPI-style 422s. With `token=...`, requests without
`Authorization: Bearer <token>` get 401 {"detail": "Invalid API key"}.

Fault injection: `fail(path_part, *behaviours)` queues behaviours consumed one per
matching request; `fail_always(path_part, behaviour)` applies until `reset()`.
Scripted faults take precedence over auth and routing. `RecordedCall.started` tells
whether the fake really processed the request (e.g. created a run) — see `started()`.

Run as a process: python -m relay.sandbox.fakes.revyl --port 0 --latency 0.1 [--token T]
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

from relay.sandbox.fakes._http import (
    RESET,
    FakeHTTPServer,
    RecordedCall,
    Reply,
    json_reply,
    run_until_signal,
)
from relay.sandbox.net import LOOPBACK, closed_port_url

__all__ = [
    "DEFAULT_SCRIPT",
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
    "Step",
    "Trickle",
    "closed_port_url",
]

Step = str | tuple[str, dict[str, Any]]
DEFAULT_SCRIPT: tuple[Step, ...] = ("running", "completed")

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
        self._scripts: dict[tuple[str, str], list[Step]] = {}  # (kind, test/workflow id)
        self.default_test_script: tuple[Step, ...] = DEFAULT_SCRIPT
        self.default_workflow_script: tuple[Step, ...] = DEFAULT_SCRIPT
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
        """Forget calls, builds, executions, run scripts and scripted faults."""
        with self._lock:
            super().reset()
            self._builds.clear()
            self._executions.clear()
            self._scripts.clear()
            self.default_test_script = self.default_workflow_script = DEFAULT_SCRIPT
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

    def script_test(self, test_id: str, steps: list[Step]) -> None:
        """The steps runs of `test_id` go through, one per status GET (see the docstring)."""
        with self._lock:
            self._scripts[("test", test_id)] = _checked(steps)

    def script_workflow(self, workflow_id: str, steps: list[Step]) -> None:
        with self._lock:
            self._scripts[("workflow", workflow_id)] = _checked(steps)

    def script_run(self, task_id: str, steps: list[Step]) -> None:
        """One run's steps, starting again from the first; KeyError for an unknown run."""
        with self._lock:
            run = self._executions[task_id]
            run.update(script=_checked(steps), cursor=0, pinned=False)

    def set_status(self, task_id: str, **fields: Any) -> None:
        """Override the run's status answer and stop its script (creates a test run if unknown)."""
        with self._lock:
            run = self._executions.get(task_id)
            if run is None:
                run = self._executions[task_id] = _new_run("test", task_id, {})
            run["status"].update(fields)
            run["pinned"] = True

    def polls(self, task_id: str) -> int:
        """Status GETs this run has answered."""
        with self._lock:
            run = self._executions.get(task_id)
            return 0 if run is None else int(run["polls"])

    def execution(self, task_id: str) -> dict[str, Any] | None:
        """The stored run: {"kind": "test"|"workflow", "request": body, "status": the last
        answer (or the queued one), "polls": n, ...}."""
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
        task_id = self._new_run("test", body)
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
        task_id = self._new_run("workflow", body)
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
            if not run["pinned"]:
                self._advance(run)
            run["polls"] += 1
            return json_reply(200, dict(run["status"]))

    def _advance(self, run: dict[str, Any]) -> None:
        """Answer the run's next step (the script is chosen at its first poll)."""
        if run["script"] is None:
            kind = run["kind"]
            own_id = run["request"].get("test_id" if kind == "test" else "workflow_id")
            default = self.default_test_script if kind == "test" else self.default_workflow_script
            run["script"] = list(self._scripts.get((kind, str(own_id)), default))
        if run["cursor"] >= len(run["script"]):
            return  # the last step repeats, answered exactly as before
        step = run["script"][run["cursor"]]
        run["cursor"] += 1
        name, fields = (step, {}) if isinstance(step, str) else step
        run["status"] = _phase(run["kind"], run["status"], name, fields)

    def _new_run(self, kind: str, body: dict[str, Any]) -> str:
        task_id = _new_id()
        with self._lock:
            self._executions[task_id] = _new_run(kind, task_id, body)
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


def _new_run(kind: str, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    status = _queued_test(task_id, body) if kind == "test" else _queued_workflow(task_id, body)
    return {
        "kind": kind,
        "request": body,
        "status": status,
        "script": None,
        "cursor": 0,
        "polls": 0,
        "pinned": False,
    }


def _queued_test(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": task_id,
        "status": "queued",
        "success": None,
        "progress": 0.0,
        "current_step": None,
        "current_step_index": 0,
        "total_steps": 3,
        "steps_completed": 0,
        "error_message": None,
        "execution_errors": None,
        "validation_failures": None,
        "started_at": None,
        "completed_at": None,
        "execution_time_seconds": None,
        "test_id": body.get("test_id"),
        "test_history_id": _new_id(),
        "workflow_run_id": None,
        "metadata": {},
    }


def _queued_workflow(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": body.get("workflow_id"),
        "execution_id": task_id,
        "status": "queued",
        "progress": 0.0,
        "completed_tests": 0,
        "total_tests": 1,
        "passed_tests": 0,
        "failed_tests": 0,
        "started_at": None,
        "error_message": None,
        "metadata": {},
    }


TERMINAL = {"completed", "failed", "cancelled", "timeout", "success", "failure"}
_TEST_PHASES: dict[str, dict[str, Any]] = {
    "queued": {"progress": 0.0, "current_step": None, "current_step_index": 0},
    "starting": {"progress": 5.0, "current_step": None, "current_step_index": 0},
    "running": {"progress": 40.0, "current_step": "Open the app", "current_step_index": 1},
    "verifying": {"progress": 90.0, "current_step": "Check the result", "current_step_index": 2},
    "stopping": {"progress": 95.0, "current_step": None, "current_step_index": 2},
    "completed": {"progress": 100.0, "current_step": None, "success": True},
    "failed": {"success": False, "error_message": "Test execution failed"},
    "cancelled": {"success": None, "error_message": "Test execution was cancelled"},
    "timeout": {"success": False, "error_message": "Test execution timed out"},
}
_WORKFLOW_PHASES: dict[str, dict[str, Any]] = {
    "queued": {"progress": 0.0},
    "setup": {"progress": 5.0},
    "running": {"progress": 40.0},
    "completed": {"progress": 100.0},
    "failed": {"error_message": "Workflow execution failed"},
    "cancelled": {"error_message": "Workflow execution was cancelled"},
    "timeout": {"error_message": "Workflow execution timed out"},
}


def _checked(steps: list[Step]) -> list[Step]:
    if not steps:
        raise ValueError("a run script needs at least one step")
    for step in steps:
        name = step if isinstance(step, str) else step[0]
        if not isinstance(name, str) or not (isinstance(step, str) or isinstance(step[1], dict)):
            raise ValueError(f"a step is a status name or (name, fields), not {step!r}")
    return list(steps)


def _phase(kind: str, current: dict[str, Any], name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The status answer for step `name` of a run whose last answer was `current`."""
    phases = _TEST_PHASES if kind == "test" else _WORKFLOW_PHASES
    answer = {**current, **phases.get(name, {}), "status": name}
    if answer["started_at"] is None and name not in {"queued", "setup"}:
        answer["started_at"] = _now()
    if kind == "test":
        if name in TERMINAL:
            answer.update(completed_at=_now(), execution_time_seconds=42.0)
        if name in {"stopping", "completed"}:
            answer["steps_completed"] = answer["total_steps"]
        elif name in _TEST_PHASES:
            answer["steps_completed"] = answer["current_step_index"]
    elif name == "completed":
        total = fields.get("total_tests", answer["total_tests"])
        failed = fields.get("failed_tests", answer["failed_tests"])
        answer.update(completed_tests=total, passed_tests=total - failed)
    return {**answer, **fields}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m relay.sandbox.fakes.revyl", description="Serve a fake Revyl API."
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
