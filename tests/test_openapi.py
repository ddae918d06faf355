"""openapi.yaml describes what the running function really answers.

1. Real answers, one per status the relay produces (triggered, duplicate, ignored, dry-run,
   Slack's message, 400, 401, 404, 405, 409, 413, 422, 502, 503), are checked against the
   document: the status is documented for that operation and the body matches its schema.
2. schemathesis fuzzes the function from the same document, signing each body the way the
   path's source signs it (so bodies get past verification into the parsers), and finds no
   5xx server error and no answer that breaks the document.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema_rs
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relay.errors import RelayError
from relay.models import Build, Execution, RelayResponse
from relay.plugins import parse_config
from relay.sandbox.fakes.revyl import EXECUTE_TEST_PATH, Delay, Status
from relay.sandbox.function_process import FunctionProcess
from relay.sandbox.net import closed_port_url
from relay.sources import build_source
from tests.payloads import (
    EAS_ANDROID_SIGNATURE,
    EAS_ERRORED_SIGNATURE,
    EAS_IOS_SIGNATURE,
    EAS_SECRET,
    GENERIC_SECRET,
    payload,
)

REPO = Path(__file__).resolve().parent.parent
SPEC_PATH = REPO / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
BUILD_VERSION = "9b2f6d3e-1c4a-4e5b-8d7f-0a1b2c3d4e5f"


# --- the document against answers ------------------------------------------------------------


def operation_for(method: str, path: str) -> dict[str, Any] | None:
    template = path if path in SPEC["paths"] else "/{source}"
    return SPEC["paths"][template].get(method.lower())


def undeclared_method_problems(method: str, path: str, answer: requests.Response) -> list[str]:
    """A method the document does not declare: 405, `Allow`, and a RelayResponse body."""
    allow = "GET, HEAD" if path == "/healthz" else "POST"
    if answer.status_code != 405 or answer.headers.get("Allow") != allow:
        return [f"{method} {path}: {answer.status_code}, Allow {answer.headers.get('Allow')}"]
    schema = {"$ref": "#/components/schemas/RelayResponse", "components": SPEC["components"]}
    validator = jsonschema_rs.Draft202012Validator(schema)
    return [f"{method} {path}: {e.message}" for e in validator.iter_errors(answer.json())]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = SPEC["components"][kind][name]
    return node


def problems(method: str, path: str, answer: requests.Response) -> list[str]:
    """What in this answer the document does not describe (empty: it conforms)."""
    operation = operation_for(method, path)
    if operation is None:
        return undeclared_method_problems(method, path, answer)
    documented = operation["responses"]
    if str(answer.status_code) not in documented:
        return [f"{method} {path}: status {answer.status_code} is not documented"]
    response = resolve(documented[str(answer.status_code)])
    found = []
    for header in response.get("headers", {}):
        if header not in answer.headers:
            found.append(f"{method} {path} {answer.status_code}: no {header} header")
    media = answer.headers.get("Content-Type", "").split(";")[0]
    if media not in response.get("content", {}):
        return [*found, f"{method} {path} {answer.status_code}: content type {media!r}"]
    schema = {**response["content"][media]["schema"], "components": SPEC["components"]}
    validator = jsonschema_rs.Draft202012Validator(schema)
    body = answer.json() if media == "application/json" else answer.text
    found += [
        f"{method} {path} {answer.status_code}: {error.message} at {list(error.instance_path)}"
        for error in validator.iter_errors(body)
    ]
    return found


def test_the_document_names_every_field_of_the_response_models():
    schemas = SPEC["components"]["schemas"]
    assert set(schemas["RelayResponse"]["properties"]) == set(RelayResponse.model_fields)
    sent = {name for name, field in Execution.model_fields.items() if not field.exclude}
    assert set(schemas["Execution"]["properties"]) == sent
    shown = set(Build.model_fields) - {"artifacts", "actor"}  # see Build.summary
    assert set(schemas["Build"]["properties"]) == shown
    assert schemas["RelayResponse"]["properties"]["decision"]["enum"] == list(
        RelayResponse.model_fields["decision"].annotation.__args__
    )


# --- real answers ----------------------------------------------------------------------------

ROUTES = f"""
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
  ci: {{type: generic, secret: {{secret: ci-webhook-secret}}}}
  slack: {{secret: {{env: SLACK_SIGNING_SECRET}}, team_id: T0001}}
  codemagic: {{secret: {{secret: ci-webhook-secret}}}}
  lost: {{type: eas, secret: {{secret: no-such-secret}}}}
routes:
  - name: mobile
    when: {{source: eas}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: [{TEST}]
  - name: ci
    when: {{source: ci}}
    tests: [{TEST}]
  - name: codemagic
    when: {{source: codemagic}}
    build: {{ingest: {{app_id: {APP}}}, version_label: "{{build_number}}"}}
    tests: [{TEST}]
"""


SOURCES = parse_config(ROUTES).sources


def signed(name: str, body: bytes, secret: str, delivery_id: str) -> dict[str, str]:
    """The headers the sender of source `name` (in ROUTES) puts on `body`."""
    return build_source(name, SOURCES[name]).sign(body, secret, time.time(), delivery_id)


def generic_build(delivery_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"platform": "android", "build_version_id": BUILD_VERSION}).encode()
    return body, signed("ci", body, GENERIC_SECRET, delivery_id)


def test_real_answers_match_the_document(start_relay, fake_revyl):
    revyl = (
        f"revyl: {{api_url: {fake_revyl.url}, token: {{secret: revyl-api-key}},"
        " request_timeout: 10, retry_deadline: 3}\n"
    )
    relay = start_relay(revyl + ROUTES, env={"SLACK_SIGNING_SECRET": SLACK_SECRET})
    answers: list[tuple[str, str, requests.Response]] = []

    def send(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> int:
        answer = requests.request(
            method, relay.url + path, data=body, headers=headers or {}, timeout=30
        )
        answers.append((method, path, answer))
        return answer.status_code

    def eas(name: str, signature: str, path: str = "/eas") -> int:
        return send("POST", path, payload(name), {"expo-signature": signature})

    ios = "eas-build-finished-ios.json"
    assert send("GET", "/healthz") == 200
    assert eas(ios, EAS_IOS_SIGNATURE) == 200  # triggered
    assert eas(ios, EAS_IOS_SIGNATURE) == 200  # duplicate
    assert eas("eas-build-errored.json", EAS_ERRORED_SIGNATURE) == 200  # ignored
    assert send("POST", "/eas", b"not json", signed("eas", b"not json", EAS_SECRET, "x")) == 400
    assert eas(ios, "sha1=" + "0" * 40) == 401
    assert send("POST", "/nowhere", b"{}") == 404
    assert send("POST", "/new%0Aline", b"{}") == 404  # the web server's own page
    assert send("GET", "/eas") == 405
    assert send("POST", "/healthz") == 405
    assert send("POST", "/eas", b"x" * (2 << 20)) == 413
    assert eas(ios, EAS_IOS_SIGNATURE, path="/lost") == 503  # the secret cannot be read

    codemagic = payload("codemagic-build-finished.json")
    headers = signed("codemagic", codemagic, GENERIC_SECRET, "cm-1")
    assert send("POST", "/codemagic", codemagic, headers) == 422  # its artifact needs a token

    form = b"team_id=T0001&channel_id=C1&user_id=U1&trigger_id=t.1&command=%2Frevyl&text=help"
    assert send("POST", "/slack", form, signed("slack", form, SLACK_SECRET, "s")) == 200

    fake_revyl.fail_always(EXECUTE_TEST_PATH, Status(403, {"detail": "no device minutes"}))
    assert eas("eas-build-finished-android.json", EAS_ANDROID_SIGNATURE) == 502
    fake_revyl.clear_faults()

    fake_revyl.fail(EXECUTE_TEST_PATH, Delay(3))
    body, headers = generic_build("slow-1")
    started = len(fake_revyl.calls_to(EXECUTE_TEST_PATH))
    first = threading.Thread(target=send, args=("POST", "/ci", body, headers))
    first.start()
    while len(fake_revyl.calls_to(EXECUTE_TEST_PATH)) == started:
        time.sleep(0.02)
    assert send("POST", "/ci", body, headers) == 409  # the first delivery is still running
    first.join()

    decisions = {
        a.json().get("decision") for _, _, a in answers if "json" in a.headers["Content-Type"]
    }
    assert {"triggered", "duplicate", "ignored", "failed", "in_progress"} <= decisions
    found = [p for method, path, answer in answers for p in problems(method, path, answer)]
    assert found == []


def test_a_dry_run_answer_with_its_plan_matches_the_document(start_relay):
    relay = start_relay(ROUTES, env={"SLACK_SIGNING_SECRET": SLACK_SECRET})
    body, headers = generic_build("dry-1")
    answer = requests.post(relay.url + "/ci", data=body, headers=headers, timeout=10)
    assert answer.json()["decision"] == "dry_run"
    assert answer.json()["plan"][0]["calls"]
    assert problems("POST", "/ci", answer) == []
    health = requests.get(relay.url + "/healthz", timeout=10)
    assert health.json() == {"status": "ok", "dry_run": True}


# --- schemathesis ----------------------------------------------------------------------------

FUZZ_SECRETS = {
    "EAS_SECRET": EAS_SECRET,
    "CI_SECRET": GENERIC_SECRET,
    "SLACK_SECRET": SLACK_SECRET,
    "GITHUB_SECRET": "test-github-secret",
    "BITRISE_SECRET": "test-bitrise-secret",
    "ASC_SECRET": "test-asc-secret",
}
FUZZ_CONFIG = f"""
sources:
  eas: {{secret: {{env: EAS_SECRET}}}}
  ci: {{type: generic, secret: {{env: CI_SECRET}}}}
  codemagic: {{secret: {{env: CI_SECRET}}}}
  slack: {{secret: {{env: SLACK_SECRET}}, team_id: T0001}}
  github: {{secret: {{env: GITHUB_SECRET}}, api: {{url: "{closed_port_url()}"}}}}
  bitrise: {{secret: {{env: BITRISE_SECRET}}}}
  asc: {{type: app-store-connect, secret: {{env: ASC_SECRET}}}}
routes:
  - name: everything
    build: {{lookup: {{app_id: {APP}}}, version_label: "{{version}}"}}
    tests: [{TEST}]
"""
FUZZ_SOURCES = {
    name: (build_source(name, settings), FUZZ_SECRETS[settings.secret.env or ""])
    for name, settings in parse_config(FUZZ_CONFIG).sources.items()
}
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionProcess]:
    """One relay in dry-run for every fuzzed request (no Revyl, no Secret Manager)."""
    folder = tmp_path_factory.mktemp("fuzz")
    config = folder / "relay.yaml"
    config.write_text(FUZZ_CONFIG)
    env = {"RELAY_CONFIG": str(config), **FUZZ_SECRETS}
    with FunctionProcess(env, log_path=folder / "relay.log") as relay:
        yield relay


@SCHEMA.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(case, fuzzed_relay):
    name = str(case.path_parameters.get("source", ""))
    if case.method == "POST":
        # most bodies go to a configured source (picked by what was generated, so the choice
        # shrinks with it), signed as its sender signs them; the rest to an unknown path
        names = [*FUZZ_SOURCES, name]
        name = names[zlib.crc32(repr((name, case.body)).encode()) % len(names)]
        case.path_parameters = {"source": name}
    request = case.as_transport_kwargs(base_url=fuzzed_relay.url)
    if case.method == "POST" and name in FUZZ_SOURCES:
        body = request.pop("data", None)
        if "json" in request:
            body = json.dumps(request.pop("json")).encode()
        elif isinstance(body, dict):
            body = urlencode(body, doseq=True).encode()
        elif isinstance(body, str):
            body = body.encode()
        body = body or b""
        source, secret = FUZZ_SOURCES[name]
        request["data"] = body
        with contextlib.suppress(RelayError):  # GitHub's cannot sign a body it cannot read
            signature = source.sign(body, secret, time.time(), f"fuzz-{zlib.crc32(body)}")
            request["headers"] = {**request.get("headers", {}), **signature}
    answer = requests.request(**request, timeout=30)
    case.validate_response(answer, checks=CHECKS)
