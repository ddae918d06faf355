"""A fake Cloud Tasks (REST API v2) on loopback that really dispatches its HTTP tasks.

Driven by the REAL client, built the way the relay builds it::

    client = tasks_v2.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=fake.url),
    )
    client.create_task(parent=client.queue_path("p", "l", "q"), task=Task(...))

Endpoints (the client adds `?$alt=json;enum-encoding=int` and no Authorization header):

- POST   /v2/projects/P/locations/L/queues/Q/tasks  `{"task": {...}, "responseView"?}` -> the
  Task JSON (name, httpRequest, scheduleTime, createTime, dispatchDeadline, dispatchCount,
  responseCount, view; the body only with responseView FULL = 2, as Cloud Tasks does).
  A task without a name gets a generated numeric id. A name that exists, or was executed or
  deleted less than `retention` seconds ago (default 3600, "about an hour"), is refused with
  409 ALREADY_EXISTS (the client raises google.api_core.exceptions.Conflict). Bad names,
  dispatchDeadline outside 15 s-30 min, scheduleTime more than 30 days ahead, bodies over
  100 KB (the stricter of the two documented limits) or a task without httpRequest.url: 400.
- GET    .../tasks/T -> the Task JSON (404 NOT_FOUND once executed, deleted or never created)
- DELETE .../tasks/T -> `{}`; the name stays reserved for `retention` seconds
Errors use Google's shape `{"error": {"code", "message", "status"}}`.

Dispatch: a thread POSTs (or uses the task's httpMethod) each task at its scheduleTime to its
url, with its headers, its base64-decoded body, `User-Agent: Google-Cloud-Tasks`, and
- `Authorization: Bearer <ID token>` minted by `issuer` just before each attempt, for
  oidcToken.audience (default: the task url) and oidcToken.serviceAccountEmail;
- X-CloudTasks-QueueName (queue id), X-CloudTasks-TaskName (task id),
  X-CloudTasks-TaskRetryCount (0 on the first attempt), X-CloudTasks-TaskExecutionCount
  (earlier attempts that got a non-5xx answer), X-CloudTasks-TaskETA (scheduleTime, epoch
  seconds), X-CloudTasks-TaskPreviousResponse (the previous attempt's status, on retries).
2xx is done; anything else, or no answer within `dispatch_timeout` (default: the task's
dispatchDeadline, 600 s), is retried after min_backoff * 2^(retries-1), capped at
max_backoff, up to max_attempts attempts (then the task is dropped: `gave_up`).

Options (constructor keywords, also attributes): `min_backoff=0.1`, `max_backoff=1.0`,
`max_attempts=5`, `retention=3600.0`, `dispatch_timeout=None`, `max_delay=None` (dispatch no
later than this many seconds after creation, whatever scheduleTime says), `paused=False`
(`pause()` / `resume()`), `deliver_twice=0` (every n-th created task, 1 = every task, is
delivered a second time: Cloud Tasks is at-least-once) with `duplicate_timing`:
"concurrent" (both deliveries start together), "after" (the second follows the first 2xx) or
"alternate" (default: the 1st, 3rd... duplicated task concurrent, the others after).
A duplicate carries the same headers as its original and is not retried.

Records: `created` (CreatedTask, in order), `attempts` (Attempt: task, attempt, duplicate,
status or None, error, headers sent), `conflicts` (names refused with 409), `gave_up`.
Helpers: `wait_idle(timeout)` (True once nothing is scheduled or in flight), `counts()`,
`attempts_for(name)`, `pending()`. API faults: `fail(path_part, reply, times=None)`.
"""

from __future__ import annotations

import base64
import heapq
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

import requests

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply
from relay.sandbox.fakes.oidc import OidcIssuer

_QUEUE = r"/v2/(?P<queue>projects/[^/]+/locations/[^/]+/queues/[^/]+)"
_CREATE = re.compile(_QUEUE + r"/tasks")
_ONE = re.compile(_QUEUE + r"/tasks/(?P<task>[^/]+)")
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,500}")
_METHODS = {1: "POST", 2: "GET", 3: "HEAD", 4: "PUT", 5: "DELETE", 6: "PATCH", 7: "OPTIONS"}
MAX_BODY = 100 * 1024
MAX_SCHEDULE_AHEAD = 30 * 24 * 3600
DEFAULT_DEADLINE = 600.0
FULL_VIEW = 2

DuplicateTiming = Literal["concurrent", "after", "alternate"]


@dataclass
class CreatedTask:
    """A task as created (the body decoded), plus its delivery state."""

    name: str
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    oidc_audience: str | None
    oidc_email: str | None
    schedule_time: float
    create_time: float
    dispatch_deadline: float
    duplicate: Literal["concurrent", "after"] | None = None
    attempts: int = 0
    responses: int = 0
    previous_status: int | None = None
    done: bool = False

    @property
    def task_id(self) -> str:
        return self.name.rsplit("/", 1)[1]

    @property
    def queue_id(self) -> str:
        return self.name.split("/")[5]


@dataclass
class Attempt:
    """One delivery: `status` None means no answer (timeout, refused connection)."""

    task: str
    attempt: int
    duplicate: bool
    status: int | None = None
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeCloudTasks(FakeApi):
    name = "fake-cloud-tasks"

    def __init__(
        self,
        issuer: OidcIssuer | None,
        *,
        min_backoff: float = 0.1,
        max_backoff: float = 1.0,
        max_attempts: int = 5,
        retention: float = 3600.0,
        dispatch_timeout: float | None = None,
        max_delay: float | None = None,
        paused: bool = False,
        deliver_twice: int = 0,
        duplicate_timing: DuplicateTiming = "alternate",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.issuer = issuer
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.retention = retention
        self.dispatch_timeout = dispatch_timeout
        self.max_delay = max_delay
        self.paused = paused
        self.deliver_twice = deliver_twice
        self.duplicate_timing: DuplicateTiming = duplicate_timing
        self.created: list[CreatedTask] = []
        self.attempts: list[Attempt] = []
        self.conflicts: list[str] = []
        self.gave_up: list[str] = []
        self._live: dict[str, CreatedTask] = {}
        self._finished_at: dict[str, float] = {}  # executed or deleted: name -> when
        self._schedule: list[tuple[float, int, str]] = []  # (due, sequence, task name)
        self._sequence = 0
        self._duplicated = 0
        self._in_flight = 0
        self._generation = 0  # bumped by reset(): deliveries from before it go unrecorded
        self._wake = threading.Condition(self._lock)
        self._dispatcher: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        super().start()
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True)
            self._dispatcher.start()
        return self

    def stop(self) -> None:
        super().stop()  # sets _stopping
        with self._wake:
            self._wake.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
            self._dispatcher = None

    def reset(self) -> None:
        """Forget tasks, names, attempts and faults (deliveries in flight finish unrecorded)."""
        with self._wake:
            super().reset()
            self.created.clear()
            self.attempts.clear()
            self.conflicts.clear()
            self.gave_up.clear()
            self._live.clear()
            self._finished_at.clear()
            self._schedule.clear()
            self._duplicated = 0
            self._generation += 1
            self._wake.notify_all()

    def pause(self) -> None:
        with self._wake:
            self.paused = True

    def resume(self) -> None:
        with self._wake:
            self.paused = False
            self._wake.notify_all()

    # reading -------------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Names of tasks not yet done (scheduled, waiting for a retry or in flight)."""
        with self._lock:
            return list(self._live)

    def attempts_for(self, name: str) -> list[Attempt]:
        """Deliveries of the task `name` (a full name or just the task id)."""
        with self._lock:
            return [a for a in self.attempts if a.task == name or a.task.endswith(f"/{name}")]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "created": len(self.created),
                "attempts": len(self.attempts),
                "succeeded": sum(1 for a in self.attempts if _ok(a.status)),
                "failed": sum(1 for a in self.attempts if not _ok(a.status)),
                "duplicates": sum(1 for a in self.attempts if a.duplicate),
                "conflicts": len(self.conflicts),
                "gave_up": len(self.gave_up),
                "pending": len(self._live),
            }

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is scheduled or in flight; False if that did not happen in time."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._schedule or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.1))
        return True

    # the REST API --------------------------------------------------------------------

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        if call.method == "POST" and (found := _CREATE.fullmatch(call.path)):
            return self._create(found["queue"], call)
        if found := _ONE.fullmatch(call.path):
            name = f"{found['queue']}/tasks/{found['task']}"
            if call.method == "GET":
                return self._get(name, call.query.get("responseView") == str(FULL_VIEW))
            if call.method == "DELETE":
                return self._delete(name)
        return google_error(404, "NOT_FOUND", f"Unknown path {call.method} {call.path}")

    def _create(self, queue: str, call: RecordedCall) -> Reply:
        body = call.json if isinstance(call.json, dict) else {}
        try:
            parsed = _parse_task(queue, body.get("task"))
        except (ValueError, TypeError) as error:  # bad base64, timestamps, durations
            parsed = _invalid(f"Invalid value in the task: {error}")
        if isinstance(parsed, Reply):
            return parsed
        with self._wake:
            if parsed.name:
                if self._name_taken(parsed.name):
                    self.conflicts.append(parsed.name)
                    return google_error(409, "ALREADY_EXISTS", "Requested entity already exists")
            else:
                parsed.name = f"{queue}/tasks/{secrets.randbelow(10**19):019d}"
            self._admit(parsed)
            call.started = True
            return json_reply(200, _task_json(parsed, full=body.get("responseView") == FULL_VIEW))

    def _get(self, name: str, full: bool) -> Reply:
        with self._lock:
            task = self._live.get(name)
            if task is None:
                return google_error(404, "NOT_FOUND", "Requested entity was not found.")
            return json_reply(200, _task_json(task, full=full))

    def _delete(self, name: str) -> Reply:
        with self._wake:
            task = self._live.pop(name, None)
            if task is None:
                return google_error(404, "NOT_FOUND", "Requested entity was not found.")
            task.done = True
            self._finished_at[name] = time.time()
            self._schedule = [entry for entry in self._schedule if entry[2] != name]
            heapq.heapify(self._schedule)
            self._wake.notify_all()
            return json_reply(200, {})

    def _name_taken(self, name: str) -> bool:
        finished = self._finished_at.get(name)
        return name in self._live or (
            finished is not None and time.time() - finished < self.retention
        )

    def _admit(self, task: CreatedTask) -> None:
        self.created.append(task)
        self._live[task.name] = task
        if self.deliver_twice and len(self.created) % self.deliver_twice == 0:
            self._duplicated += 1
            concurrent = self.duplicate_timing == "concurrent" or (
                self.duplicate_timing == "alternate" and self._duplicated % 2 == 1
            )
            task.duplicate = "concurrent" if concurrent else "after"
        due = task.schedule_time
        if self.max_delay is not None:
            due = min(due, task.create_time + self.max_delay)
        self._push(due, task.name)

    def _push(self, due: float, name: str) -> None:
        self._sequence += 1
        heapq.heappush(self._schedule, (due, self._sequence, name))
        self._wake.notify_all()

    # dispatching ---------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        with self._wake:
            while not self._stopping.is_set():
                if self.paused or not self._schedule:
                    self._wake.wait(0.5)
                    continue
                due, _, name = self._schedule[0]
                if due > time.time():
                    self._wake.wait(min(due - time.time(), 0.5))
                    continue
                heapq.heappop(self._schedule)
                task = self._live.get(name)
                if task is None:
                    continue
                task.attempts += 1
                self._start_delivery(task, duplicate=False)
                if task.duplicate == "concurrent" and task.attempts == 1:
                    self._start_delivery(task, duplicate=True)

    def _start_delivery(self, task: CreatedTask, *, duplicate: bool) -> None:
        self._in_flight += 1
        headers = self._headers(task)
        attempt = Attempt(task.name, task.attempts, duplicate, headers=headers)
        args = (task, attempt, self._generation)
        threading.Thread(target=self._deliver, args=args, daemon=True).start()

    def _headers(self, task: CreatedTask) -> dict[str, str]:
        headers = {
            **{k: v for k, v in task.headers.items() if not _replaced(k, task)},
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": task.queue_id,
            "X-CloudTasks-TaskName": task.task_id,
            "X-CloudTasks-TaskRetryCount": str(task.attempts - 1),
            "X-CloudTasks-TaskExecutionCount": str(task.responses),
            "X-CloudTasks-TaskETA": f"{task.schedule_time:.6f}",
        }
        if task.body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"
        if task.previous_status is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.previous_status)
        if task.oidc_email is not None and self.issuer is not None:
            token = self.issuer.mint(task.oidc_audience or task.url, task.oidc_email)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _deliver(self, task: CreatedTask, attempt: Attempt, generation: int) -> None:
        timeout = self.dispatch_timeout or task.dispatch_deadline
        try:
            answer = requests.request(
                task.method,
                task.url,
                headers=attempt.headers,
                data=task.body or None,
                timeout=timeout,
                allow_redirects=False,
            )
            attempt.status = answer.status_code
        except requests.RequestException as error:
            attempt.error = type(error).__name__
        with self._wake:
            self._in_flight -= 1
            if generation == self._generation:
                self.attempts.append(attempt)
            if not attempt.duplicate and self._live.get(task.name) is task:
                self._settle(task, attempt.status)
            self._wake.notify_all()

    def _settle(self, task: CreatedTask, status: int | None) -> None:
        if status is not None and status < 500:
            task.responses += 1
        task.previous_status = status
        if _ok(status) or task.attempts >= self.max_attempts:
            if not _ok(status):
                self.gave_up.append(task.name)
            del self._live[task.name]
            task.done = True
            self._finished_at[task.name] = time.time()
            if _ok(status) and task.duplicate == "after":
                self._start_delivery(task, duplicate=True)
            return
        backoff = min(self.max_backoff, self.min_backoff * 2 ** (task.attempts - 1))
        self._push(time.time() + backoff, task.name)


# --- parsing and answering --------------------------------------------------------------


def google_error(code: int, status: str, message: str) -> Reply:
    return json_reply(code, {"error": {"code": code, "message": message, "status": status}})


def _invalid(message: str) -> Reply:
    return google_error(400, "INVALID_ARGUMENT", message)


def _parse_task(queue: str, task: Any) -> CreatedTask | Reply:
    if not isinstance(task, dict):
        return _invalid("task is required")
    http = task.get("httpRequest")
    if not isinstance(http, dict) or not str(http.get("url", "")).startswith(
        ("http://", "https://")
    ):
        return _invalid("this fake serves HTTP tasks: httpRequest.url (http or https) is required")
    name = str(task.get("name") or "")
    task_id = name.removeprefix(f"{queue}/tasks/")
    if name and (task_id == name or not _TASK_ID.fullmatch(task_id)):
        return _invalid(f"Invalid resource field value in the request: name {name!r}")
    now = time.time()
    schedule = _timestamp(task.get("scheduleTime")) or now
    deadline = _duration(task.get("dispatchDeadline")) or DEFAULT_DEADLINE
    body = base64.b64decode(http.get("body") or "")
    oidc = http.get("oidcToken") if isinstance(http.get("oidcToken"), dict) else None
    if schedule > now + MAX_SCHEDULE_AHEAD:
        return _invalid("scheduleTime is more than 30 days ahead")
    if not 15 <= deadline <= 1800:
        return _invalid("dispatchDeadline must be between 15 s and 30 min")
    if len(body) > MAX_BODY:
        return _invalid(f"the task is larger than {MAX_BODY} bytes")
    return CreatedTask(
        name=name,
        url=http["url"],
        method=_method(http.get("httpMethod")),
        headers={str(k): str(v) for k, v in (http.get("headers") or {}).items()},
        body=body,
        oidc_audience=(oidc or {}).get("audience") or None,
        oidc_email=(oidc or {}).get("serviceAccountEmail") or None,
        schedule_time=schedule,
        create_time=now,
        dispatch_deadline=deadline,
    )


def _method(value: Any) -> str:
    if isinstance(value, str) and not value.isdigit():
        return value if value in _METHODS.values() else "POST"
    return _METHODS.get(int(value or 1), "POST")


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _duration(value: Any) -> float | None:
    return float(str(value).removesuffix("s")) if value else None


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _task_json(task: CreatedTask, *, full: bool) -> dict[str, Any]:
    method = next(number for number, name in _METHODS.items() if name == task.method)
    http: dict[str, Any] = {"url": task.url, "httpMethod": method, "headers": task.headers}
    if task.oidc_email is not None:
        http["oidcToken"] = {
            "serviceAccountEmail": task.oidc_email,
            "audience": task.oidc_audience or task.url,
        }
    if full and task.body:
        http["body"] = base64.b64encode(task.body).decode()
    return {
        "name": task.name,
        "httpRequest": http,
        "scheduleTime": _rfc3339(task.schedule_time),
        "createTime": _rfc3339(task.create_time),
        "dispatchDeadline": f"{task.dispatch_deadline:g}s",
        "dispatchCount": task.attempts,
        "responseCount": task.responses,
        "view": FULL_VIEW if full else 1,
    }


def _replaced(header: str, task: CreatedTask) -> bool:
    """A header of the task that Cloud Tasks replaces with its own."""
    lower = header.lower()
    token = lower == "authorization" and task.oidc_email is not None
    return token or lower in {"user-agent", "host"} or lower.startswith("x-cloudtasks-")


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300
