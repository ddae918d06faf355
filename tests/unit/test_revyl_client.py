"""The retry rules of the Revyl client, against the fake Revyl's scripted faults over real HTTP.

Sleeping is recorded rather than done, so the tests show which waits the client chose (and stay
fast); every request still goes over a real socket to the fake.
"""

from __future__ import annotations

import time

import pytest

from relay.config import RevylSettings
from relay.models import Build
from relay.revyl.client import MAX_ATTEMPTS, RETRY_AFTER_CAP, RequestsRevylClient
from relay.revyl.sansio import MaybeStarted, NotStarted, Refused
from relay.sandbox.fakes.revyl import (
    EXECUTE_TEST_PATH,
    EXECUTE_WORKFLOW_PATH,
    FakeRevyl,
    Hang,
    Reset,
    Status,
    Trickle,
    closed_port_url,
)

TOKEN = "rev_unit_token_1234"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
BUILD = Build(source="eas", system="expo-eas", platform="ios", version="1.0", build_number="7")


@pytest.fixture(scope="module")
def server():
    with FakeRevyl(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def revyl(server: FakeRevyl) -> FakeRevyl:
    server.reset()
    return server


class Client:
    """A RequestsRevylClient whose sleeps are recorded instead of slept."""

    def __init__(self, api_url: str, now: float | None = None, **settings: float) -> None:
        self.sleeps: list[float] = []
        self.revyl = RequestsRevylClient(
            RevylSettings(
                api_url=api_url, **{"request_timeout": 2, "connect_timeout": 1, **settings}
            ),
            sleep=self.sleeps.append,
            **({"wall_clock": lambda: now} if now is not None else {}),
        )

    def execute(self, deadline: float = 60.0):
        return self.revyl.execute_test(TOKEN, time.monotonic() + deadline, TEST, None, BUILD)


def test_429_is_retried_after_the_retry_after_it_names(revyl):
    revyl.fail(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": "3"}))
    client = Client(revyl.url)
    started = client.execute()
    assert started.execution_id
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 2
    assert len(revyl.started(EXECUTE_TEST_PATH)) == 1
    assert client.sleeps == [3.0]


def test_a_long_retry_after_is_capped(revyl):
    revyl.fail(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": "3600"}))
    client = Client(revyl.url)
    client.execute()
    assert client.sleeps == [RETRY_AFTER_CAP]


def test_a_retry_after_past_the_deadline_is_not_waited_for(revyl):
    revyl.fail(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": "8"}))
    client = Client(revyl.url)
    with pytest.raises(NotStarted) as caught:
        client.execute(deadline=5)
    assert caught.value.status == 429
    assert client.sleeps == []
    assert revyl.started(EXECUTE_TEST_PATH) == []


def test_503_is_retried_with_growing_jittered_backoff(revyl):
    revyl.fail(EXECUTE_TEST_PATH, Status(503), Status(503))
    client = Client(revyl.url)
    assert client.execute().execution_id
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 3
    assert len(revyl.started(EXECUTE_TEST_PATH)) == 1
    first, second = client.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


def test_503_that_lasts_gives_up_after_the_last_attempt(revyl):
    revyl.fail_always(EXECUTE_TEST_PATH, Status(503))
    client = Client(revyl.url)
    with pytest.raises(NotStarted):
        client.execute()
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == MAX_ATTEMPTS
    assert revyl.started(EXECUTE_TEST_PATH) == []


def test_a_refused_connection_is_retried_then_reported_as_not_started():
    client = Client(closed_port_url())
    with pytest.raises(NotStarted, match="connection refused"):
        client.execute()
    assert len(client.sleeps) == MAX_ATTEMPTS - 1


@pytest.mark.parametrize("code", [500, 502, 504])
def test_a_5xx_on_execute_is_ambiguous_and_never_retried(revyl, code):
    revyl.fail(EXECUTE_TEST_PATH, Status(code))
    client = Client(revyl.url)
    with pytest.raises(MaybeStarted) as caught:
        client.execute()
    assert caught.value.status == code
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 1
    assert client.sleeps == []


@pytest.mark.parametrize("processed", [False, True])
def test_a_reset_after_sending_is_ambiguous_and_never_retried(revyl, processed):
    revyl.fail(EXECUTE_WORKFLOW_PATH, Reset(processed=processed))
    client = Client(revyl.url)
    with pytest.raises(MaybeStarted):
        client.revyl.execute_workflow(TOKEN, time.monotonic() + 60, WORKFLOW, BUILD, APP, "1.0")
    assert len(revyl.calls_to(EXECUTE_WORKFLOW_PATH)) == 1
    assert len(revyl.started(EXECUTE_WORKFLOW_PATH)) == int(processed)


def test_a_read_timeout_is_ambiguous_and_never_retried(revyl):
    revyl.fail(EXECUTE_TEST_PATH, Hang(5))
    client = Client(revyl.url, request_timeout=0.3)
    with pytest.raises(MaybeStarted, match="did not answer"):
        client.execute()
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 1
    assert len(revyl.started(EXECUTE_TEST_PATH)) == 1  # Revyl did start it: hence no retry


def test_an_answer_trickled_byte_by_byte_is_cut_at_the_whole_calls_bound(revyl):
    """Each byte comes well inside the read timeout; the whole answer would take ~25 s. The
    call is bounded by connect_timeout + request_timeout as a whole: ambiguous (the run did
    start), so never retried, and the relay's lease margin counts on that bound."""
    revyl.fail(EXECUTE_TEST_PATH, Trickle(0.1))
    client = Client(revyl.url, request_timeout=0.5, connect_timeout=0.5)
    with pytest.raises(MaybeStarted, match="within 1s"):
        client.execute()
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 1
    assert len(revyl.started(EXECUTE_TEST_PATH)) == 1


def test_a_trickled_read_is_retried_inside_the_deadline_each_attempt_bounded(revyl):
    wanted = revyl.add_build(APP, "1.0 (7)")
    revyl.fail(f"/apps/{APP}/builds", Trickle(0.1))
    client = Client(revyl.url, request_timeout=0.5, connect_timeout=0.5)
    assert client.revyl.lookup(TOKEN, time.monotonic() + 60, APP, "1.0 (7)") == wanted
    assert len(revyl.calls_to(f"/apps/{APP}/builds")) == 2


def test_the_connection_of_a_call_that_ended_in_time_is_reused_unharmed(revyl):
    """A call's deadline passing after it ended never cuts the pooled connection it used."""
    client = Client(revyl.url, request_timeout=0.1, connect_timeout=0.1)
    for _ in range(5):
        assert client.execute().execution_id
        time.sleep(0.25)  # past the previous call's bound: its watch must be gone
    assert len(revyl.started(EXECUTE_TEST_PATH)) == 5


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        (401, "Invalid API key"),
        (402, "Out of device minutes"),
        (404, "Test not found"),
        (422, "build_version_id: not a valid UUID"),
    ],
)
def test_4xx_is_final_and_carries_revyls_message(revyl, code, detail):
    revyl.fail(EXECUTE_TEST_PATH, Status(code, json_body={"detail": detail}))
    client = Client(revyl.url)
    with pytest.raises(Refused) as caught:
        client.execute()
    assert caught.value.status == code
    assert detail in caught.value.message
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 1


def test_ingest_is_idempotent_at_revyl_so_ambiguous_failures_are_retried(revyl):
    revyl.fail("/builds/from-url", Status(500), Reset())
    client = Client(revyl.url)
    build_id = client.revyl.ingest(
        TOKEN, time.monotonic() + 60, APP, "https://x/app.ipa", "1.0 (7)", BUILD
    )
    assert len(revyl.calls_to("/builds/from-url")) == 3
    assert [b["id"] for b in revyl.builds(APP)] == [build_id]


def test_lookups_are_reads_so_ambiguous_failures_are_retried(revyl):
    wanted = revyl.add_build(APP, "1.0 (7)")
    revyl.fail(f"/apps/{APP}/builds", Status(502))
    client = Client(revyl.url)
    assert client.revyl.lookup(TOKEN, time.monotonic() + 60, APP, "1.0 (7)") == wanted
    assert len(revyl.calls_to(f"/apps/{APP}/builds")) == 2


def test_a_malformed_retry_after_is_ignored_not_an_error(revyl):
    revyl.fail(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": "Mon, 99 Foo 20x"}))
    client = Client(revyl.url)
    assert client.execute().execution_id
    assert len(client.sleeps) == 1
    assert client.sleeps[0] <= 0.5


def test_a_retry_after_date_is_counted_from_the_clients_wall_clock(revyl):
    date = "Sun, 29 Nov 2026 12:00:04 GMT"  # 4 s after `now`
    revyl.fail(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": date}))
    client = Client(revyl.url, now=1795953600.0)  # Sun, 29 Nov 2026 12:00:00 GMT
    assert client.execute().execution_id
    assert client.sleeps == [4.0]


def test_workflow_status_reads_a_started_workflow_and_a_test_id_is_refused_404(revyl):
    client = Client(revyl.url)
    deadline = time.monotonic() + 60
    started = client.revyl.execute_workflow(TOKEN, deadline, WORKFLOW, BUILD, None, None)
    status = client.revyl.workflow_status(TOKEN, deadline, started.execution_id)
    assert status["status"]
    test = client.execute()
    with pytest.raises(Refused) as caught:
        client.revyl.workflow_status(TOKEN, deadline, test.execution_id)
    assert caught.value.status == 404


def test_ci_headers_from_payload_values_are_sent_as_utf8_without_control_characters(revyl):
    build = BUILD.model_copy(update={"branch": "feature/ünïcode-Ā", "run_id": "42\r\nX-Evil: 1"})
    client = Client(revyl.url)
    client.revyl.execute_test(TOKEN, time.monotonic() + 60, TEST, None, build)
    (call,) = revyl.calls_to(EXECUTE_TEST_PATH)
    assert call.headers["x-ci-branch"].encode("latin-1").decode() == "feature/ünïcode-Ā"
    assert call.headers["x-ci-run-id"] == "42X-Evil: 1"
    assert "x-evil" not in call.headers
