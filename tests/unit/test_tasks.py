"""The task seam: names, envelopes, retries, the in-process driver, the task token's claims."""

from __future__ import annotations

import threading

import pytest

from relay.errors import Unauthorized
from relay.tasks import RetryLater, Task, base_name, envelope, from_envelope
from relay.tasks.local import LocalTaskQueue
from relay.tasks.oidc import bearer, check_claims

SA = "relay-tasks@p.iam.gserviceaccount.com"


def test_a_task_name_is_what_cloud_tasks_accepts():
    Task("k", name="abc-DEF_123")
    for bad in ("", "a/b", "a b", "x" * 501, "ü"):
        with pytest.raises(ValueError, match="task name"):
            Task("k", name=bad)


def test_an_envelope_round_trips_and_refuses_what_is_not_a_task():
    task = Task("verdict.poll", {"check": "c", "n": 2}, "c-p2")
    assert from_envelope(envelope(task, 3)) == (
        Task("verdict.poll", {"check": "c", "n": 2}, "c-p2"),
        3,
    )
    for bad in ([], {"payload": {}}, {"kind": "k", "payload": []}, {"kind": "k", "attempt": 0}):
        with pytest.raises(ValueError, match="task"):
            from_envelope(bad)


def test_a_retry_has_its_own_name_and_the_delay_asked_for():
    queue = LocalTaskQueue(max_attempts=3, backoff_min=1, backoff_max=4)
    task = Task("k", {}, "c-p1")
    first = queue.retry(task, 1, RetryLater("503"))
    assert (first.name, first.delay) == ("c-p1-a2", 1.0)
    second = queue.retry(first, 2, RetryLater("429", after=7))
    assert (second.name, second.delay) == ("c-p1-a3", 7)
    assert queue.retry(second, 3, RetryLater("503")) is None  # its last attempt
    assert base_name("c-p1-a12") == "c-p1"
    assert base_name("check-abc") == "check-abc"


def test_the_local_driver_runs_a_name_once_and_retries_what_asks():
    queue = LocalTaskQueue(backoff_min=0.01)
    runs: list[int] = []
    done = threading.Event()

    def handler(payload, attempt):
        runs.append(attempt)
        if attempt < 3:
            raise RetryLater("not yet")
        done.set()

    queue.register("k", handler)
    queue.schedule(Task("k", {}, "once"))
    queue.schedule(Task("k", {}, "once"))  # the same name: dropped
    assert done.wait(5)
    assert queue.wait_idle(5)
    assert runs == [1, 2, 3]


def test_the_local_driver_waits_for_the_delay():
    queue = LocalTaskQueue()
    ran = threading.Event()
    queue.register("k", lambda payload, attempt: ran.set())
    queue.schedule(Task("k", delay=0.3))
    assert not ran.wait(0.1)
    assert ran.wait(5)


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        ({"iss": "https://accounts.google.com", "email": SA, "email_verified": True}, True),
        ({"iss": "accounts.google.com", "email": SA, "email_verified": True}, True),
        ({"iss": "https://evil.example", "email": SA, "email_verified": True}, False),
        ({"iss": "https://accounts.google.com", "email": "x@y", "email_verified": True}, False),
        ({"iss": "https://accounts.google.com", "email": SA, "email_verified": False}, False),
        ({"iss": "https://accounts.google.com", "email": SA}, False),
    ],
)
def test_a_task_tokens_claims(claims, ok):
    if ok:
        check_claims(claims, email=SA)
    else:
        with pytest.raises(Unauthorized):
            check_claims(claims, email=SA)


def test_a_task_request_needs_a_bearer_token():
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer"):
        with pytest.raises(Unauthorized):
            bearer(bad)
