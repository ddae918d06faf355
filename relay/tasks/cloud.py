"""The Cloud Tasks driver: each task is an HTTP request back to the function.

`schedule` creates a task on `cloud_tasks.queue` that Cloud Tasks POSTs, at its time, to
`<cloud_tasks.url>/_relay/task` with an OIDC token for `cloud_tasks.service_account`
(audience: `cloud_tasks.url`). `receive` is that request arriving: the token is verified
(`relay.tasks.oidc`), the task runs, and the answer tells Cloud Tasks whether it is done.

A task's `name` becomes the Cloud Tasks task id (Cloud Tasks refuses a name used within about
an hour: a step scheduled twice runs once). A `RetryLater` schedules the next attempt as a new
task with the delay asked for and answers 2xx, so Cloud Tasks' own retries (the queue's retry
config) are left for the cases the relay could not say anything: a crash, a timeout, or a 503
when even the next attempt could not be scheduled.

`google-cloud-tasks` imports gRPC even over REST: it is imported on the first `schedule`, so
a cold start does not pay for it. With `RELAY_CLOUD_TASKS_ENDPOINT` set (tests, local fakes)
the client talks REST to that endpoint with anonymous credentials.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from relay.config import CloudTasksSettings
from relay.errors import BadRequest, Unavailable
from relay.tasks import (
    TASK_PATH,
    RetryLater,
    Task,
    TaskQueue,
    UnknownTask,
    envelope,
    from_envelope,
)
from relay.tasks.oidc import OidcVerifier

log = logging.getLogger("relay")

ENDPOINT_VARIABLE = "RELAY_CLOUD_TASKS_ENDPOINT"
DISPATCH_DEADLINE = 120  # seconds Cloud Tasks waits for one attempt's answer
CREATE_TIMEOUT = 10.0


class CloudTasksQueue(TaskQueue):
    def __init__(
        self,
        settings: CloudTasksSettings,
        verifier: OidcVerifier,
        *,
        endpoint: str | None = None,
        **policy: Any,
    ) -> None:
        super().__init__(**policy)
        self.settings = settings
        self.verifier = verifier
        self.endpoint = endpoint
        self._client: Any = None
        self._lock = threading.Lock()

    # out: a task to Cloud Tasks

    def schedule(self, task: Task, attempt: int = 1) -> None:
        from google.api_core import exceptions
        from google.cloud import tasks_v2

        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=task.delay)
        body = json.dumps(envelope(task, attempt), separators=(",", ":")).encode()
        created = tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=f"{self.settings.url}/{TASK_PATH}",
                http_method=tasks_v2.HttpMethod.POST,
                headers={"Content-Type": "application/json"},
                body=body,
                oidc_token=tasks_v2.OidcToken(
                    service_account_email=self.settings.service_account,
                    audience=self.settings.url,
                ),
            ),
            schedule_time=when,
            dispatch_deadline=datetime.timedelta(seconds=DISPATCH_DEADLINE),
        )
        if task.name:
            created.name = f"{self.settings.queue}/tasks/{task.name}"
        try:
            self.client().create_task(
                parent=self.settings.queue, task=created, timeout=CREATE_TIMEOUT
            )
        except exceptions.Conflict:  # scheduled before (or run within the hour): once is enough
            log.info("task already scheduled", extra={"task": task.kind, "task_name": task.name})

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import tasks_v2

                if self.endpoint:
                    from google.api_core.client_options import ClientOptions
                    from google.auth.credentials import AnonymousCredentials

                    self._client = tasks_v2.CloudTasksClient(
                        transport="rest",
                        credentials=AnonymousCredentials(),
                        client_options=ClientOptions(api_endpoint=self.endpoint),
                    )
                else:
                    self._client = tasks_v2.CloudTasksClient(transport="rest")
            return self._client

    # in: Cloud Tasks posting a task back

    def receive(self, headers: Mapping[str, str], body: bytes) -> Task:
        """Verify and run one task request (headers lower-cased). Raises Unauthorized (a
        request not from Cloud Tasks: nothing runs), BadRequest, or Unavailable (Cloud Tasks
        should retry it); returns the task that ran."""
        self.verifier.verify(headers.get("authorization"))
        try:
            task, attempt = from_envelope(json.loads(body))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise BadRequest(f"not a relay task: {exc}") from None
        started = time.monotonic()
        try:
            self.run(task.kind, task.payload, attempt)
        except RetryLater as reason:
            self._again(task, attempt, reason)
        except UnknownTask as exc:  # from another version of the relay: retrying cannot help
            log.error(str(exc), extra={"task": task.kind, "task_name": task.name})
        log.info(
            f"task {task.kind} ran",
            extra={
                "task": task.kind,
                "attempt": attempt,
                "task_name": task.name,
                "latency_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return task

    def _again(self, task: Task, attempt: int, reason: RetryLater) -> None:
        again = self.retry(task, attempt, reason)
        if again is None:
            return
        try:
            self.schedule(again, attempt + 1)
        except Exception as exc:
            message = f"the task's next attempt could not be scheduled ({type(exc).__name__})"
            raise Unavailable(message) from None
