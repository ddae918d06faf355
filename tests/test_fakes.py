"""Quick checks of the test infrastructure itself: real sockets, real clients."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import google.auth.transport.requests
import pytest
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import secretmanager, tasks_v2
from google.oauth2 import id_token
from google.protobuf import timestamp_pb2
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply
from relay.sandbox.fakes.cloud_tasks import FakeCloudTasks
from relay.sandbox.fakes.github_api import FakeGitHubApi, github_error
from relay.sandbox.fakes.oidc import OidcIssuer, SigningKey
from relay.sandbox.fakes.revyl import (
    EXECUTE_TEST_PATH,
    EXECUTE_WORKFLOW_PATH,
    TEST_STATUS_PATH,
    Delay,
    FakeRevyl,
    Hang,
    Reset,
    Status,
    closed_port_url,
)
from relay.sandbox.fakes.secret_manager import FakeSecretManager, crc32c
from relay.sandbox.fakes.slack_api import FakeSlackApi
from relay.sandbox.fakes.slack_response_url import FakeSlackResponseUrl
from relay.sandbox.fakes.webhook_receiver import WebhookReceiver
from relay.sandbox.function_process import REPO_ROOT, FunctionProcess, FunctionProcessError
from relay.signatures import sign_standard_webhook
from tests.fakes.firestore_emulator import FirestoreEmulator, missing_reason

APP = "6f1c2a5e-0000-4000-8000-000000000001"
SECRET = "projects/demo/secrets/revyl-api-key/versions/latest"


@pytest.fixture
def revyl() -> Iterator[FakeRevyl]:
    with FakeRevyl() as fake:
        yield fake


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def execute(http: requests.Session, revyl: FakeRevyl, **kwargs: float) -> requests.Response:
    return http.post(revyl.url + EXECUTE_TEST_PATH, json={"test_id": "t-1"}, **kwargs)


# --- relay.sandbox stays out of the deployed function ------------------------------------


def test_the_runtime_never_imports_the_sandbox():
    relay = REPO_ROOT / "relay"
    importers = []
    for source in [REPO_ROOT / "main.py", *relay.rglob("*.py")]:
        if (relay / "sandbox") in source.parents or (relay / "cli") in source.parents:
            continue  # the sandbox itself, and `python -m relay sandbox` (an operator tool)
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            if any(name.startswith("relay.sandbox") for name in names):
                importers.append(str(source.relative_to(REPO_ROOT)))
    assert importers == []
    assert "relay/sandbox/" in (REPO_ROOT / ".gcloudignore").read_text().splitlines()


# --- FakeRevyl: endpoints --------------------------------------------------------------


def test_execute_test_queues_a_run_whose_status_can_be_polled(revyl, http):
    answer = execute(http, revyl)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "queued"
    assert body["id"] == body["task_id"]
    (call,) = revyl.calls_to("execute_test_id_async")
    assert (call.method, call.json, call.started) == ("POST", {"test_id": "t-1"}, True)
    assert call.headers["content-type"] == "application/json"

    status = http.get(revyl.url + TEST_STATUS_PATH, params={"task_id": body["id"]}).json()
    assert (status["id"], status["status"], status["success"], status["test_id"]) == (
        body["id"],
        "running",
        None,
        "t-1",
    )
    revyl.set_status(body["id"], status="completed", success=True, progress=100.0)
    status = http.get(revyl.url + TEST_STATUS_PATH, params={"task_id": body["id"]}).json()
    assert (status["status"], status["success"]) == ("completed", True)

    missing = http.get(revyl.url + TEST_STATUS_PATH, params={"task_id": "nope"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Task not found"})


def test_validation_errors_unknown_paths_and_workflows(revyl, http):
    answer = http.post(revyl.url + EXECUTE_TEST_PATH, json={"build_version_id": "b"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "test_id"]
    assert revyl.started("execute_test") == []

    workflow = http.post(revyl.url + EXECUTE_WORKFLOW_PATH, json={"workflow_id": "w-1"})
    assert workflow.status_code == 200
    assert workflow.json()["id"] == workflow.json()["task_id"]

    unknown = http.get(revyl.url + "/api/v1/nothing/here")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})
    assert http.get(revyl.url + EXECUTE_TEST_PATH).status_code == 405


def test_from_url_is_idempotent_per_app_and_version(revyl, http):
    url = f"{revyl.url}/api/v1/apps/{APP}/builds/from-url"
    request = {"from_url": "https://x/app.apk", "version": "1.2.3", "metadata": {"sha": "abc"}}
    first = http.post(url, json=request).json()
    again = http.post(url, json=request).json()
    assert first["was_reused"] is False
    assert again["was_reused"] is True
    assert first["id"] == again["id"]
    assert (first["app_id"], first["version"], first["metadata"]) == (APP, "1.2.3", {"sha": "abc"})
    assert first["artifact_url"].startswith("s3://fake/")
    other = http.post(url, json={**request, "version": "1.2.4"}).json()
    assert other["id"] != first["id"]
    assert http.post(url, json={"version": "1"}).status_code == 422


def test_build_lookup_is_a_substring_search_with_paging(revyl, http):
    ids = {v: revyl.add_build(APP, v) for v in ["1.0", "1.0.1", "11.0", "2.0", "v1.0-RC"]}
    assert revyl.add_build(APP, "1.0") == ids["1.0"]
    url = f"{revyl.url}/api/v1/apps/{APP}/builds"

    found = http.get(url, params={"search": "1.0"}).json()
    assert {item["version"] for item in found["items"]} == {"1.0", "1.0.1", "11.0", "v1.0-RC"}
    assert found["page_size"] == 20
    assert http.get(url, params={"search": "rc"}).json()["total"] == 1

    page1 = http.get(url, params={"search": "1.0", "page_size": 3}).json()
    page2 = http.get(url, params={"search": "1.0", "page_size": 3, "page": 2}).json()
    assert (page1["total"], page1["total_pages"], page1["has_next"]) == (4, 2, True)
    assert (len(page2["items"]), page2["has_next"], page2["has_previous"]) == (1, False, True)
    assert http.get(url, params={"page_size": 101}).status_code == 422
    assert http.get(f"{revyl.url}/api/v1/apps/other/builds").json()["items"] == []


def test_token_is_required_when_set(http):
    with FakeRevyl(token="rev_test") as revyl:
        refused = execute(http, revyl)
        assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid API key"})
        http.headers["Authorization"] = "Bearer rev_test"
        assert execute(http, revyl).status_code == 200
        assert len(revyl.started(EXECUTE_TEST_PATH)) == 1


# --- FakeRevyl: faults, latency, lifecycle ---------------------------------------------------


def test_scripted_faults_are_consumed_in_order(revyl, http):
    revyl.fail(
        "execute_test",
        Status(429, headers={"Retry-After": "1"}),
        Status(402, {"detail": "free device time is used up"}),
        Reset(),
    )
    limited = execute(http, revyl)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert execute(http, revyl).json() == {"detail": "free device time is used up"}
    with pytest.raises(requests.ConnectionError):
        execute(http, revyl)
    assert execute(http, revyl).status_code == 200
    assert [c.status for c in revyl.calls] == [429, 402, None, 200]
    assert len(revyl.calls_to(EXECUTE_TEST_PATH)) == 4
    assert len(revyl.started(EXECUTE_TEST_PATH)) == 1


def test_hang_times_the_client_out_but_the_run_starts(revyl, http):
    revyl.fail("execute_test", Hang(2))
    with pytest.raises(requests.ReadTimeout):
        execute(http, revyl, timeout=0.5)
    assert len(revyl.started("execute_test")) == 1


def test_processed_faults_and_fail_always(revyl, http):
    revyl.fail("execute_test", Status(503, processed=True), Reset(processed=True))
    assert execute(http, revyl).status_code == 503
    with pytest.raises(requests.ConnectionError):
        execute(http, revyl)
    assert len(revyl.started("execute_test")) == 2

    revyl.fail_always("builds", Status(500, body=b"<pre>boom</pre>", content_type="text/html"))
    for _ in range(2):
        broken = http.get(f"{revyl.url}/api/v1/apps/{APP}/builds")
        assert (broken.status_code, broken.text) == (500, "<pre>boom</pre>")
    revyl.reset()
    assert revyl.calls == []
    assert http.get(f"{revyl.url}/api/v1/apps/{APP}/builds").status_code == 200


def test_latency_and_delay(revyl, http):
    revyl.fail("execute_test", Delay(0.3))
    started = time.monotonic()
    assert execute(http, revyl).status_code == 200
    assert time.monotonic() - started >= 0.3
    revyl.latency = 0.2
    started = time.monotonic()
    execute(http, revyl)
    assert time.monotonic() - started >= 0.2


def test_keep_alive_requests_are_fast(revyl, http):
    """50 POSTs on one connection: a Nagle/delayed-ACK stall would cost 40 ms each."""
    started = time.monotonic()
    for _ in range(50):
        execute(http, revyl)
    assert time.monotonic() - started < 1.0


def test_stopped_fake_and_closed_port_refuse_connections(http):
    revyl = FakeRevyl().start()
    assert execute(http, revyl).status_code == 200  # leaves an idle keep-alive connection
    revyl.stop()
    with pytest.raises(requests.ConnectionError):
        execute(http, revyl, timeout=2)
    revyl.start()  # same port again
    try:
        assert execute(http, revyl).status_code == 200
    finally:
        revyl.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(closed_port_url(), timeout=2)


@pytest.mark.parametrize(
    ("module", "args", "path"),
    [
        ("relay.sandbox.fakes.revyl", ["--latency", "0.01"], EXECUTE_TEST_PATH),
        (
            "relay.sandbox.fakes.secret_manager",
            ["--set", "revyl-api-key=rev_test"],
            f"/v1/{SECRET}:access",
        ),
    ],
)
def test_fakes_run_as_processes(module, args, path):
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "READY"
        method = "POST" if module.endswith("revyl") else "GET"
        answer = requests.request(method, line[1] + path, json={"test_id": "t"}, timeout=5)
        assert answer.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()


# --- FakeSecretManager with the real client ------------------------------------------------


@pytest.fixture
def secrets() -> Iterator[FakeSecretManager]:
    with FakeSecretManager() as fake:
        yield fake


def sm_client(fake: FakeSecretManager) -> secretmanager.SecretManagerServiceClient:
    return secretmanager.SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=fake.url),
    )


def test_secret_round_trip_with_the_real_client(secrets):
    secrets.set("revyl-api-key", "rev_test")
    client = sm_client(secrets)
    answer = client.access_secret_version(name=SECRET)
    assert answer.payload.data == b"rev_test"
    assert answer.payload.data_crc32c == crc32c(b"rev_test")
    secrets.set("revyl-api-key", "rev_new")
    assert client.access_secret_version(name=SECRET).payload.data == b"rev_new"
    old = client.access_secret_version(name="projects/demo/secrets/revyl-api-key/versions/1")
    assert old.payload.data == b"rev_test"
    (call,) = secrets.calls[:1]
    assert (call.method, call.path) == ("GET", f"/v1/{SECRET}:access")
    assert secrets.access_count() == 3
    assert secrets.access_count("revyl-api-key") == 3


def test_missing_secret_and_outage(secrets):
    client = sm_client(secrets)
    with pytest.raises(gexc.NotFound, match="not found or has no versions"):
        client.access_secret_version(name=SECRET)
    secrets.set("revyl-api-key", "x")
    secrets.delete("revyl-api-key")
    with pytest.raises(gexc.NotFound):
        client.access_secret_version(name=SECRET)
    secrets.down = True
    with pytest.raises(gexc.ServiceUnavailable):
        client.access_secret_version(name=SECRET, retry=None, timeout=2)
    assert secrets.access_count("revyl-api-key") == 3
    assert crc32c(b"123456789") == 0xE3069283  # the published check value


# --- Firestore emulator -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[FirestoreEmulator]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with FirestoreEmulator() as emu:
        yield emu


def test_firestore_emulator_create_and_transaction(emulator, monkeypatch):
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    db = firestore.Client(project="demo")
    ref = db.collection("deliveries").document("d-1")
    ref.create({"n": 1})
    with pytest.raises(gexc.AlreadyExists):
        ref.create({"n": 2})

    @firestore.transactional
    def bump(transaction: firestore.Transaction) -> None:
        snapshot = ref.get(transaction=transaction)
        transaction.update(ref, {"n": snapshot.get("n") + 1})

    bump(db.transaction())
    assert ref.get().to_dict() == {"n": 2}

    port = emulator.port
    emulator.restart()
    assert emulator.port == port
    assert not firestore.Client(project="demo").document("deliveries/d-1").get().exists


# --- FunctionProcess -----------------------------------------------------------------------

THROWAWAY_MAIN = """
    import sys
    import functions_framework

    print("booting", flush=True)

    @functions_framework.http
    def relay_webhook(request):
        print(f"handled {request.path}", file=sys.stderr)
        return "ok " + request.path
"""


def test_function_process_serves_and_captures_logs(tmp_path: Path):
    (tmp_path / "main.py").write_text(textwrap.dedent(THROWAWAY_MAIN))
    with FunctionProcess(env={"SOME_SETTING": "1"}, cwd=tmp_path, health_marker=b"ok") as fn:
        assert fn.health_status == 200
        assert requests.get(fn.url + "/eas", timeout=5).text == "ok /eas"
        deadline = time.monotonic() + 5
        while "handled /eas" not in fn.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "booting" in fn.log_text()
        assert "handled /eas" in fn.log_text()
    assert fn.returncode is not None


def test_function_process_reports_a_failed_start(tmp_path: Path):
    (tmp_path / "main.py").write_text("raise SystemExit('missing configuration XYZ')\n")
    with pytest.raises(FunctionProcessError, match="missing configuration XYZ"):
        FunctionProcess(cwd=tmp_path).start()


# --- FakeRevyl: run lifecycle (one step per status GET) ---------------------------------------


def poll_test(http: requests.Session, revyl: FakeRevyl, task_id: str) -> dict:
    return http.get(revyl.url + TEST_STATUS_PATH, params={"task_id": task_id}).json()


def poll_workflow(http: requests.Session, revyl: FakeRevyl, task_id: str) -> dict:
    return http.get(f"{revyl.url}/api/v1/workflows/status/{task_id}").json()


def start(http: requests.Session, revyl: FakeRevyl, path: str, **body: str) -> str:
    return http.post(revyl.url + path, json=body).json()["task_id"]


def test_runs_pass_on_their_second_poll_by_default(revyl, http):
    test = start(http, revyl, EXECUTE_TEST_PATH, test_id="t-1")
    assert revyl.execution(test)["status"]["status"] == "queued"
    first, second = poll_test(http, revyl, test), poll_test(http, revyl, test)
    assert (first["status"], first["success"], first["progress"]) == ("running", None, 40.0)
    assert (second["status"], second["success"], second["progress"]) == ("completed", True, 100.0)
    assert second["completed_at"] is not None
    assert second["steps_completed"] == second["total_steps"]
    assert poll_test(http, revyl, test) == second  # the last step repeats exactly
    assert revyl.polls(test) == 3

    workflow = start(http, revyl, EXECUTE_WORKFLOW_PATH, workflow_id="w-1")
    assert poll_workflow(http, revyl, workflow)["status"] == "running"
    done = poll_workflow(http, revyl, workflow)
    assert (done["status"], done["completed_tests"], done["total_tests"]) == ("completed", 1, 1)
    assert (done["passed_tests"], done["failed_tests"]) == (1, 0)


def test_scripted_test_and_workflow_runs(revyl, http):
    failure = ("completed", {"success": False, "error_message": "login-flow failed"})
    revyl.script_test("t-login", ["queued", "running", failure])
    three_tests, one_failed = {"total_tests": 3}, {"failed_tests": 1}
    revyl.script_workflow(
        "w-nightly", [("queued", three_tests), "setup", "running", ("completed", one_failed)]
    )
    test = start(http, revyl, EXECUTE_TEST_PATH, test_id="t-login")
    other = start(http, revyl, EXECUTE_TEST_PATH, test_id="t-other")
    answers = [poll_test(http, revyl, test) for _ in range(4)]
    assert [a["status"] for a in answers] == ["queued", "running", "completed", "completed"]
    assert answers[0]["started_at"] is None
    assert answers[1]["started_at"] is not None
    assert (answers[3]["success"], answers[3]["error_message"]) == (False, "login-flow failed")
    assert poll_test(http, revyl, other)["status"] == "running"  # the default script

    workflow = start(http, revyl, EXECUTE_WORKFLOW_PATH, workflow_id="w-nightly")
    statuses = [poll_workflow(http, revyl, workflow) for _ in range(4)]
    assert [s["status"] for s in statuses] == ["queued", "setup", "running", "completed"]
    last = statuses[-1]
    assert (last["total_tests"], last["completed_tests"]) == (3, 3)
    assert (last["passed_tests"], last["failed_tests"]) == (2, 1)

    revyl.script_run(test, ["cancelled"])
    cancelled = poll_test(http, revyl, test)
    assert (cancelled["status"], cancelled["success"]) == ("cancelled", None)
    with pytest.raises(ValueError, match="at least one step"):
        revyl.script_test("t-empty", [])


def test_set_status_holds_a_run_and_faults_do_not_advance_it(revyl, http):
    test = start(http, revyl, EXECUTE_TEST_PATH, test_id="t-1")
    revyl.set_status(test, status="running", progress=70.0)
    held = [poll_test(http, revyl, test) for _ in range(3)]
    assert {(answer["status"], answer["progress"]) for answer in held} == {("running", 70.0)}

    other = start(http, revyl, EXECUTE_TEST_PATH, test_id="t-2")
    revyl.fail(TEST_STATUS_PATH, Status(503))
    assert http.get(revyl.url + TEST_STATUS_PATH, params={"task_id": other}).status_code == 503
    assert revyl.polls(other) == 0
    assert poll_test(http, revyl, other)["status"] == "running"  # still the first step


# --- OidcIssuer and FakeCloudTasks with the real google-cloud-tasks client ----------------

SERVICE_ACCOUNT = "relay-tasks@demo.iam.gserviceaccount.com"


class Target(FakeHTTPServer):
    """A task handler: answers `statuses` in order (then 200), each after `delay` seconds."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        super().__init__()
        self.statuses = list(statuses or [])
        self.delay = delay

    def handle(self, call: RecordedCall) -> Reply:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
        return Reply(status=status, body=b"{}", delay=self.delay)


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as fake:
        yield fake


@pytest.fixture
def target() -> Iterator[Target]:
    with Target() as fake:
        yield fake


def tasks_client(fake: FakeCloudTasks) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=fake.url),
    )


def http_task(url: str, name: str = "", delay: float = 0.0, **oidc: str) -> tasks_v2.Task:
    schedule = timestamp_pb2.Timestamp()
    schedule.FromSeconds(int(time.time() + delay))
    return tasks_v2.Task(
        name=name,
        schedule_time=schedule,
        http_request=tasks_v2.HttpRequest(
            url=url,
            http_method=tasks_v2.HttpMethod.POST,
            headers={"Content-Type": "application/json"},
            body=b'{"execution_id": "e-1"}',
            oidc_token=tasks_v2.OidcToken(service_account_email=SERVICE_ACCOUNT, **oidc),
        ),
    )


def verify(token: str, audience: str, issuer: OidcIssuer) -> dict:
    request = google.auth.transport.requests.Request()
    return id_token.verify_token(token, request, audience=audience, certs_url=issuer.certs_url)


def test_a_task_is_created_by_the_real_client_and_dispatched_with_a_token(issuer, target):
    with FakeCloudTasks(issuer) as tasks:
        client = tasks_client(tasks)
        queue = client.queue_path("demo", "europe-west1", "verdicts")
        name = client.task_path("demo", "europe-west1", "verdicts", "poll-abc-1")
        created = client.create_task(parent=queue, task=http_task(target.url + "/follow", name))
        assert created.name == name
        assert created.http_request.body == b""  # BASIC view, as Cloud Tasks answers
        assert tasks.wait_idle(10)

        with pytest.raises(gexc.Conflict):
            client.create_task(parent=queue, task=http_task(target.url + "/follow", name))
        unnamed = client.create_task(parent=queue, task=http_task(target.url, delay=3600))
        assert unnamed.name.startswith(queue + "/tasks/")

    (call,) = target.calls
    assert (call.method, call.path, call.body) == ("POST", "/follow", b'{"execution_id": "e-1"}')
    assert call.headers["content-type"] == "application/json"
    assert call.headers["x-cloudtasks-queuename"] == "verdicts"
    assert call.headers["x-cloudtasks-taskname"] == "poll-abc-1"
    assert call.headers["x-cloudtasks-taskretrycount"] == "0"
    assert call.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert float(call.headers["x-cloudtasks-tasketa"]) == created.schedule_time.timestamp()
    token = call.headers["authorization"].removeprefix("Bearer ")
    claims = verify(token, target.url + "/follow", issuer)  # audience defaults to the url
    assert (claims["iss"], claims["email"], claims["email_verified"]) == (
        "https://accounts.google.com",
        SERVICE_ACCOUNT,
        True,
    )
    with pytest.raises(ValueError, match="audience"):
        verify(token, "https://elsewhere.example/follow", issuer)
    assert tasks.conflicts == [name]
    assert tasks.counts()["created"] == 2


def test_forged_and_expired_tokens_do_not_verify(issuer):
    audience = "https://relay.example/follow"
    assert verify(issuer.mint(audience, SERVICE_ACCOUNT), audience, issuer)["sub"]
    refused = {
        "Could not verify token signature": {"signer": issuer.impostor()},
        "Certificate for key id .* not found": {"signer": SigningKey.generate()},
        "Token expired": {"lifetime": -600},
    }
    for reason, options in refused.items():
        with pytest.raises(GoogleAuthError, match=reason):
            verify(issuer.mint(audience, SERVICE_ACCOUNT, **options), audience, issuer)
    other = issuer.mint(audience, SERVICE_ACCOUNT, issuer="https://evil.example")
    assert verify(other, audience, issuer)["iss"] == "https://evil.example"  # the caller checks


def test_failed_and_timed_out_deliveries_are_retried_then_dropped(issuer):
    with (
        Target(statuses=[500, 404, 200]) as target,
        FakeCloudTasks(issuer, min_backoff=0.01, max_backoff=0.05) as tasks,
    ):
        client = tasks_client(tasks)
        queue = client.queue_path("demo", "l", "q")
        created = client.create_task(parent=queue, task=http_task(target.url, audience="aud-1"))
        assert tasks.wait_idle(10)
        attempts = tasks.attempts_for(created.name)
        assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 404), (3, 200)]
        headers = [call.headers for call in target.calls]
        assert [h["x-cloudtasks-taskretrycount"] for h in headers] == ["0", "1", "2"]
        assert [h["x-cloudtasks-taskexecutioncount"] for h in headers] == ["0", "0", "1"]
        assert headers[2]["x-cloudtasks-taskpreviousresponse"] == "404"
        assert verify(headers[0]["authorization"][7:], "aud-1", issuer)["aud"] == "aud-1"

        with pytest.raises(gexc.Conflict):  # executed: the name stays taken
            client.create_task(parent=queue, task=http_task(target.url, created.name))

    with (
        Target(delay=1.0) as slow,
        FakeCloudTasks(issuer, min_backoff=0.01, max_attempts=2, dispatch_timeout=0.2) as tasks,
    ):
        tasks_client(tasks).create_task(parent=queue, task=http_task(slow.url))
        assert tasks.wait_idle(10)
        assert [(a.status, a.error) for a in tasks.attempts] == [(None, "ReadTimeout")] * 2
        assert len(tasks.gave_up) == 1


def test_duplicate_deliveries_pause_max_delay_get_and_delete(issuer, target):
    with FakeCloudTasks(issuer, deliver_twice=1, max_delay=0.0, paused=True) as tasks:
        client = tasks_client(tasks)
        queue = client.queue_path("demo", "l", "q")
        first = client.create_task(parent=queue, task=http_task(target.url, delay=3600))
        second = client.create_task(parent=queue, task=http_task(target.url, delay=3600))
        assert not tasks.wait_idle(0.2)  # paused: nothing goes out
        assert tasks.pending() == [first.name, second.name]
        assert client.get_task(name=first.name).name == first.name
        tasks.resume()
        assert tasks.wait_idle(10)  # max_delay=0: no waiting for the hour
        deliveries = [(a.task, a.duplicate) for a in tasks.attempts]
        assert sorted(deliveries) == sorted(
            [(first.name, False), (first.name, True), (second.name, False), (second.name, True)]
        )
        assert tasks.counts()["duplicates"] == 2
        assert {task.duplicate for task in tasks.created} == {"concurrent", "after"}
        with pytest.raises(gexc.NotFound):
            client.get_task(name=first.name)

    with FakeCloudTasks(issuer, retention=0.0) as tasks:
        client = tasks_client(tasks)
        queue = client.queue_path("demo", "l", "q")
        name = f"{queue}/tasks/later"
        client.create_task(parent=queue, task=http_task(target.url, name, delay=3600))
        client.delete_task(name=name)
        assert tasks.wait_idle(1)
        client.create_task(parent=queue, task=http_task(target.url, name, delay=3600))
        assert tasks.pending() == [name]
        with pytest.raises(gexc.BadRequest):
            client.create_task(parent=queue, task=http_task(target.url, f"{queue}/tasks/a.b"))


# --- FakeSlackApi with the real slack_sdk WebClient -----------------------------------------

SLACK_TOKEN = "xoxb-1-fake"


@pytest.fixture
def slack_api() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=SLACK_TOKEN, channels={"C0QA", "C0PRIVATE"}) as fake:
        yield fake


def web_client(fake: FakeSlackApi, token: str = SLACK_TOKEN) -> WebClient:
    return WebClient(token=token, base_url=fake.url + "/api/")


def test_slack_post_thread_and_update_with_the_real_client(slack_api):
    client = web_client(slack_api)
    assert client.auth_test()["bot_id"] == "B0FAKEBOT"
    parent = client.chat_postMessage(channel="C0QA", text="ios-smoke: running", blocks=[])
    assert (parent["ok"], parent["channel"]) == (True, "C0QA")
    reply = client.chat_postMessage(channel="C0QA", text="login failed", thread_ts=parent["ts"])
    again = client.chat_postMessage(channel="C0QA", text="second")
    assert len({parent["ts"], reply["ts"], again["ts"]}) == 3
    updated = client.chat_update(channel="C0QA", ts=parent["ts"], text="ios-smoke: failed")
    assert (updated["ts"], updated["text"]) == (parent["ts"], "ios-smoke: failed")

    assert [m["text"] for m in slack_api.messages("C0QA")] == ["ios-smoke: failed", "second"]
    (threaded,) = slack_api.replies("C0QA", parent["ts"])
    assert (threaded["text"], threaded["thread_ts"]) == ("login failed", parent["ts"])
    assert [u["text"] for u in slack_api.updates("C0QA", parent["ts"])] == ["ios-smoke: failed"]
    call = slack_api.calls_to("chat.postMessage")[0]
    assert call.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert call.json["channel"] == "C0QA"


def refusal(send: Callable[[], object]) -> SlackResponse:
    with pytest.raises(SlackApiError) as raised:
        send()
    return raised.value.response


def test_slack_errors_come_as_ok_false_and_rate_limits_as_429(slack_api):
    client = web_client(slack_api)
    slack_api.error("not_in_channel", channel="C0PRIVATE")
    slack_api.ratelimit(retry_after=7, method="chat.postMessage")
    limited = refusal(lambda: client.chat_postMessage(channel="C0QA", text="x"))
    assert (limited.status_code, limited["error"], limited.headers["Retry-After"]) == (
        429,
        "ratelimited",
        "7",
    )
    assert refusal(lambda: client.chat_postMessage(channel="C0PRIVATE", text="x")).data == {
        "ok": False,
        "error": "not_in_channel",
    }
    assert refusal(lambda: client.chat_postMessage(channel="C0NONE", text="x")).status_code == 200
    unknown = refusal(lambda: client.chat_update(channel="C0QA", ts="1.000001", text="x"))
    assert unknown["error"] == "message_not_found"
    assert refusal(lambda: web_client(slack_api, "xoxb-wrong").auth_test())["error"] == (
        "invalid_auth"
    )
    assert slack_api.calls[0].status == 429

    foreign = slack_api.add_foreign_message("C0QA", "someone else's")
    with pytest.raises(SlackApiError, match="cant_update_message"):
        client.chat_update(channel="C0QA", ts=foreign, text="mine now")
    form = requests.post(
        slack_api.url + "/api/chat.postMessage",
        data={"token": SLACK_TOKEN, "channel": "C0QA", "text": "from a form"},
    ).json()
    assert (form["ok"], form["message"]["text"]) == (True, "from a form")
    unauthenticated = requests.post(slack_api.url + "/api/chat.postMessage", json={"text": "x"})
    assert unauthenticated.json() == {"ok": False, "error": "not_authed"}


def test_response_url_takes_five_posts(http):
    with FakeSlackResponseUrl() as slack:
        url = slack.response_url("1")
        answers = [http.post(url, json={"text": f"post {n}"}) for n in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [404]
        assert answers[-1].text == "used_url"
        assert len(slack.posts()) == 5
        assert http.post(slack.response_url("2"), json={"text": "x"}).status_code == 200


# --- GitHub commit statuses --------------------------------------------------------------------

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


def test_github_commit_statuses(http):
    with FakeGitHubApi(token="ghp_statuses") as github:
        url = f"{github.url}/repos/acme/app/statuses/{SHA}"
        http.headers["Authorization"] = "Bearer ghp_statuses"
        status = {
            "state": "failure",
            "target_url": "https://app.revyl.ai/r",
            "context": "revyl/ios",
        }
        created = http.post(url, json={**status, "description": "login-flow failed"})
        assert created.status_code == 201
        assert created.json()["state"] == "failure"
        assert created.json()["context"] == "revyl/ios"
        too_long = http.post(url, json={**status, "description": "x" * 141})
        assert too_long.status_code == 422
        assert too_long.json()["errors"][0]["field"] == "description"
        assert http.post(url, json={**status, "state": "passed"}).status_code == 422
        assert http.post(url, json={**status, "state": "success"}).status_code == 201
        assert [s["state"] for s in github.statuses("acme/app", SHA)] == ["failure", "success"]
        listed = http.get(f"{github.url}/repos/acme/app/commits/{SHA}/statuses").json()
        assert [s["state"] for s in listed] == ["success", "failure"]

        github.unknown_shas.add("0" * 40)
        unknown = http.post(f"{github.url}/repos/acme/app/statuses/{'0' * 40}", json=status)
        assert unknown.status_code == 422
        github.fail("/statuses/", github_error(429, retry_after=3), times=1)
        limited = http.post(url, json=status)
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
        assert http.post(url, json=status).status_code == 201
        refused = http.post(url, json=status, headers={"Authorization": "Bearer nope"})
        assert (refused.status_code, refused.json()["message"]) == (401, "Bad credentials")


# --- WebhookReceiver: the standardwebhooks package verifies the relay's own signer --------

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def signed(body: bytes, msg_id: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    headers = sign_standard_webhook(body, secret, time.time(), msg_id)
    return {**headers, "Content-Type": "application/json"}


def test_the_receiver_verifies_the_relays_signatures(http):
    body = b'{"type": "verdict", "execution_id": "e-1", "passed": false}'
    with WebhookReceiver(WEBHOOK_SECRET, statuses=[500]) as receiver:
        first = http.post(receiver.url + "/hooks/revyl", data=body, headers=signed(body, "msg_1"))
        retry = http.post(receiver.url + "/hooks/revyl", data=body, headers=signed(body, "msg_1"))
        assert (first.status_code, retry.status_code) == (500, 200)
        wrong_key = signed(body, "msg_2", "whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ==")
        forged = http.post(receiver.url + "/hooks/revyl", data=body, headers=wrong_key)
        tampered = http.post(
            receiver.url, data=body.replace(b"false", b"true"), headers=signed(body, "msg_3")
        )
        assert (forged.status_code, tampered.status_code) == (401, 401)

        (message,) = receiver.wait_for(1)
        assert (message.id, message.attempts, message.accepted) == ("msg_1", 2, True)
        assert message.payload == {"type": "verdict", "execution_id": "e-1", "passed": False}
        assert [a.verified for a in receiver.attempts] == [True, True, False, False]
        assert receiver.attempts[2].error == "No matching signature found"
        assert [a.status for a in receiver.attempts] == [500, 200, 401, 401]
