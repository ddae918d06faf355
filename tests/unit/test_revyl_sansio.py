"""Revyl requests as data, answers as data or typed exceptions."""

import json

import pytest

from relay.models import Build
from relay.revyl import sansio
from relay.revyl.sansio import MaybeStarted, NotStarted, Refused

BUILD = Build(
    source="eas",
    system="expo-eas",
    platform="android",
    commit="abc",
    branch="main",
    pr_number=412,
    build_url="https://expo.dev/b/1",
    run_id="1",
    repository=None,
)
NOW = 1795953600.0  # Sun, 29 Nov 2026 12:00:00 GMT


def test_execute_test_request_carries_ci_headers_and_omits_unknowns():
    request = sansio.execute_test("t-1", "bv-1", BUILD, "revyl-relay")
    assert request.json == {"test_id": "t-1", "source": "ci_cd", "build_version_id": "bv-1"}
    assert request.headers == {
        "X-Revyl-Client": "revyl-relay",
        "X-CI-System": "expo-eas",
        "X-CI-Commit-SHA": "abc",
        "X-CI-Branch": "main",
        "X-CI-PR-Number": "412",
        "X-CI-Run-URL": "https://expo.dev/b/1",
        "X-CI-Run-ID": "1",
    }
    assert not request.idempotent
    assert "build_version_id" not in sansio.execute_test("t-1", None, BUILD, "r").json


def test_execute_workflow_pins_the_label_for_the_platform():
    request = sansio.execute_workflow(
        "w-1", BUILD, "r", app_id="app-1", pinned_version="2.4.0 (187)"
    )
    assert request.json == {
        "workflow_id": "w-1",
        "build_config": {"android_build": {"app_id": "app-1", "pinned_version": "2.4.0 (187)"}},
        "override_build_config": True,
    }
    assert sansio.execute_workflow("w-1", BUILD, "r").json == {"workflow_id": "w-1"}


def test_ingest_is_idempotent_and_slow_with_metadata():
    request = sansio.ingest_build(
        "app-1", "https://x/app.apk", "2.4.0", BUILD, {"Authorization": "t"}
    )
    assert request.idempotent
    assert request.slow
    assert request.json["metadata"]["commit_sha"] == "abc"
    assert request.json["metadata"]["pr_number"] == 412
    assert request.json["headers"] == {"Authorization": "t"}


def test_describe_masks_the_token():
    described = sansio.execute_test("t", None, BUILD, "r").describe()
    assert described["headers"]["Authorization"] == "Bearer ***"


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, b'{"detail":"Invalid API key"}', Refused, "Invalid API key"),
        (402, b'{"detail":"free device time is used up"}', Refused, "free device time"),
        (404, b'{"message":"test not found"}', Refused, "test not found"),
        (
            422,
            b'{"detail":[{"loc":["body","test_id"],"msg":"Field required","type":"missing"}]}',
            Refused,
            "body.test_id: Field required",
        ),
        (
            400,
            b'{"detail":{"code":"build_artifact_rejected","message":"not an app"}}',
            Refused,
            "not an app",
        ),
        (429, b'{"error":"slow down"}', NotStarted, "slow down"),
        (503, b"<html>down</html>", NotStarted, "down"),
        (500, b"<pre>boom</pre>", MaybeStarted, "boom"),
        (502, b"", MaybeStarted, "502"),
        (504, b'{"errors":[{"field":"x","message":"late"}]}', MaybeStarted, "late"),
    ],
)
def test_decipher_errors(status, body, error, message):
    with pytest.raises(error) as caught:
        sansio.decipher_response(status, {}, body, NOW)
    assert message in caught.value.message
    assert caught.value.status == status


def test_retry_after_is_read():
    with pytest.raises(NotStarted) as caught:
        sansio.decipher_response(429, {"Retry-After": "3"}, b"", NOW)
    assert caught.value.retry_after == 3.0


def test_retry_after_as_a_date_counts_from_the_given_now():
    headers = {"retry-after": "Sun, 29 Nov 2026 12:00:30 GMT"}
    assert sansio.retry_after(headers, NOW) == 30.0
    assert sansio.retry_after(headers, NOW + 60) == 0.0  # already past
    assert sansio.retry_after({"Retry-After": "Sun, 29 Nov 2026 12:00:30"}, NOW) is None  # no zone


def test_workflow_status_is_an_idempotent_get_with_the_id_in_the_path():
    request = sansio.workflow_status("0b7e/..?x")
    assert (request.method, request.path) == ("GET", "/api/v1/workflows/status/0b7e%2F..%3Fx")
    assert request.idempotent
    assert request.params is None


def test_read_started_and_failed_dispatch():
    started = sansio.read_started(
        {"status": "queued", "message": "", "id": "e-1", "task_id": "e-1"}
    )
    assert (started.execution_id, started.status) == ("e-1", "queued")
    assert (
        sansio.read_started({"status": "initialized", "id": "e-2", "task_id": ""}).execution_id
        == "e-2"
    )
    with pytest.raises(Refused):
        sansio.read_started({"status": "failed", "message": "no device", "id": "e", "task_id": "e"})
    with pytest.raises(MaybeStarted):
        sansio.read_started({"status": "queued"})


def test_read_build_page_matches_exactly():
    page = {
        "items": [{"id": "a", "version": "2.4.0 (1870)"}, {"id": "b", "version": "2.4.0 (187)"}],
        "has_next": True,
    }
    assert sansio.read_build_page(page, "2.4.0 (187)") == ("b", True)
    assert sansio.read_build_page(
        {"items": [{"id": "a", "version": "2.4.0 (1870)"}]}, "2.4.0 (187)"
    ) == (None, False)


def test_report_urls():
    assert (
        sansio.report_url("https://app.revyl.ai", "test", "e1")
        == "https://app.revyl.ai/tests/report?taskId=e1"
    )
    assert sansio.report_url("https://app.revyl.ai", "workflow", "e1").endswith(
        "/workflows/report?taskId=e1"
    )


@pytest.mark.parametrize(
    ("kind", "data", "outcome"),
    [
        ("test", {"status": "queued"}, "running"),
        ("test", {"status": "running", "success": None}, "running"),
        ("test", {"status": "running", "success": True}, "running"),  # not finished yet
        ("test", {"status": "completed", "success": True}, "passed"),
        ("test", {"status": "completed", "success": False}, "failed"),
        ("test", {"status": "completed", "error_message": "boom"}, "failed"),
        ("test", {"status": "completed"}, "passed"),
        ("test", {"status": "COMPLETED", "error_message": ""}, "passed"),
        ("test", {"status": "success"}, "passed"),  # legacy words
        ("test", {"status": "failure"}, "failed"),
        ("test", {"status": "timeout"}, "failed"),
        ("test", {"status": "failed", "success": None}, "failed"),
        ("test", {"status": "cancelled"}, "cancelled"),
        ("test", {"success": False}, "failed"),  # no status, success set: finished
        ("test", "not an object", "running"),
        ("workflow", {"status": "completed", "failed_tests": 0}, "passed"),
        ("workflow", {"status": "completed", "failed_tests": 1}, "failed"),
        ("workflow", {"status": "setup"}, "running"),
        ("workflow", {"status": "running"}, "running"),
        ("workflow", {"status": "timeout"}, "failed"),
        ("workflow", {"status": "cancelled"}, "cancelled"),
    ],
)
def test_a_runs_state_follows_the_revyl_cli(kind, data, outcome):
    state = sansio.read_run_state(kind, data)
    assert state.outcome == outcome
    assert state.finished == (outcome != "running")


def test_a_runs_state_keeps_revyls_status_and_error():
    state = sansio.read_run_state("test", {"status": "failed", "error_message": " login failed "})
    assert (state.status, state.error) == ("failed", "login failed")


def test_ci_header_values_are_cut_to_the_limit_and_cleaned():
    long = Build(source="ci", system="generic", branch="b" * 100_000, commit=" a\r\nb\x00c ")
    headers = sansio.ci_headers(long, "revyl-relay")
    assert headers["X-CI-Branch"] == "b" * sansio.MAX_HEADER_VALUE
    assert headers["X-CI-Commit-SHA"] == "abc"
    assert sansio.header_value("é" * 300) == "é" * sansio.MAX_HEADER_VALUE


def test_revyls_answers_are_read_with_readable_strings():
    data = sansio.decipher_response(200, {}, b'{"task_id": "x\\udfff", "status": "q\\ud800"}', 0)
    assert sansio.read_started(data) == sansio.Started("x\ufffd", "q\ufffd")
    assert sansio.report_url("https://app.revyl.ai", "test", "x\ufffd").endswith("x%EF%BF%BD")
    with pytest.raises(MaybeStarted, match="not JSON"):
        sansio.decipher_response(200, {}, b"[" * 5000 + b"]" * 5000, 0)
    with pytest.raises(Refused, match="bad \ufffd"):
        sansio.decipher_response(422, {}, b'{"detail": "bad \\ud800"}', 0)


def test_revyls_error_text_is_capped_wherever_it_travels():
    body = json.dumps({"detail": "x" * 2_000_000}).encode()
    message = sansio.error_message(body)
    assert len(message) <= sansio.MAX_ERROR_MESSAGE
    assert message.endswith("more characters]")
