"""Hostile and broken input, property-based, against the running function (every source type).

For each type in `relay.sources.known_types()` (so sources added later are covered too), one
relay serves a source of that type, configured with dummy settings whose APIs all point at a
closed loopback port (nothing leaves the machine). Hypothesis then sends:

- random bodies and headers: never a 500, always JSON with a `decision`, never a call to Revyl;
- validly signed deliveries with the body, a header or the signature mutated: refused (401) and
  nothing started whenever the mutation breaks the signature;
- random JSON bodies signed with the right secret: never a 500, always JSON with a `decision`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import types
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from relay.config import SecretRef
from relay.errors import BadRequest, Unauthorized
from relay.plugins import typed_sources
from relay.revyl.sansio import MAX_HEADER_VALUE
from relay.sandbox.fakes.revyl import FakeRevyl, Status
from relay.sandbox.function_process import FunctionProcess
from relay.sandbox.net import closed_port_url
from relay.signatures import sign_hex_hmac
from relay.sources import Delivery, build_source, known_types, settings_model
from relay.sources.generic import MAX_TEST_IDS
from relay.sources.payload import MAX_JSON_DEPTH
from tests.conftest import REVYL_TOKEN
from tests.payloads import PAYLOADS

SECRET = "hostile-signing-secret-0123456789"
DUMMY = "hostile-dummy-value"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"


def private_key_pem() -> str:
    """A throwaway P-256 key: a well-formed dummy for settings that sign with a private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


ENV = {
    "HOSTILE_SECRET": SECRET,
    "HOSTILE_DUMMY": DUMMY,
    "HOSTILE_KEY": private_key_pem(),
    "HOSTILE_REVYL_TOKEN": REVYL_TOKEN,
}
HEADER_CHARS = st.characters(codec="latin-1", exclude_categories=("Cc",))
SETTINGS = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "25")),  # more: HOSTILE_EXAMPLES=500
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- configuring every source type -------------------------------------------------------------


def dummy_value(name: str, annotation: Any) -> Any:
    """A harmless value for a required setting; raises LookupError if it cannot make one."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = options[0]
    if annotation is SecretRef or SecretRef in options:
        return {"env": "HOSTILE_DUMMY"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dummy_model(annotation)
    if annotation is str or str in options:
        return closed_port_url() if "url" in name else DUMMY
    if annotation in (int, float):
        return 1
    if annotation is bool:
        return False
    raise LookupError(f"no dummy value for {name}: {annotation}")


def dummy_model(model: type[BaseModel], all_secrets: bool = False) -> dict[str, Any]:
    """Required fields filled, every URL pointed at a closed loopback port, and (all_secrets)
    optional secrets given too, for settings whose validators require them."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in ("type", "secret"):
            continue
        wanted = (
            field.is_required()
            or name == "url"
            or name.endswith(("_url", "_url_prefix"))
            or _has_url(field.annotation)  # an API with a default public URL: point it home
            or (all_secrets and SecretRef in (field.annotation, *typing.get_args(field.annotation)))
        )
        if wanted:
            annotation = field.annotation
            if SecretRef in (annotation, *typing.get_args(annotation)):
                values[name] = {"env": "HOSTILE_KEY" if "key" in name else "HOSTILE_DUMMY"}
            elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
                values[name] = dummy_model(annotation, all_secrets)
            elif _has_url(annotation):
                model_type = next(a for a in typing.get_args(annotation) if _has_url(a))
                values[name] = dummy_model(model_type, all_secrets)
            else:
                values[name] = dummy_value(name, annotation)
    return values


def _has_url(annotation: Any) -> bool:
    candidates = [annotation, *typing.get_args(annotation)]
    return any(
        isinstance(c, type) and issubclass(c, BaseModel) and "url" in c.model_fields
        for c in candidates
    )


def source_config(source_type: str) -> dict[str, Any]:
    for all_secrets in (False, True):
        config = {"type": source_type, "secret": {"env": "HOSTILE_SECRET"}}
        config.update(dummy_model(settings_model(source_type), all_secrets))
        try:
            typed_sources({source_type: config})
            return config
        except ValueError:
            if all_secrets:
                raise
    raise AssertionError("unreachable")


def configurable() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    configs, problems = {}, {}
    for source_type in known_types():
        try:
            configs[source_type] = source_config(source_type)
        except Exception as exc:  # reported by test_every_source_type_is_covered
            problems[source_type] = f"{type(exc).__name__}: {exc}"
    return configs, problems


CONFIGS, PROBLEMS = configurable()


def test_every_source_type_is_covered():
    assert PROBLEMS == {}, (
        "these source types could not be configured with dummy settings, so the hostile-input "
        f"tests do not cover them; teach dummy_value() their settings: {PROBLEMS}"
    )


# --- one relay serving every source ---------------------------------------------------------


@pytest.fixture(scope="module")
def relay(_revyl_server: FakeRevyl, tmp_path_factory) -> Iterator[FunctionProcess]:
    _revyl_server.token = REVYL_TOKEN
    config = {
        "revyl": {
            "api_url": _revyl_server.url,
            "token": {"env": "HOSTILE_REVYL_TOKEN"},
            "retry_deadline": 1,
            "request_timeout": 2,
        },
        "sources": CONFIGS,
        "routes": [{"name": "everything", "tests": [TEST]}],
    }
    path = tmp_path_factory.mktemp("hostile") / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    process = FunctionProcess(
        {"RELAY_CONFIG": str(path), "GOOGLE_CLOUD_PROJECT": "demo", **ENV},
        log_path=path.with_suffix(".log"),
    )
    with process:
        yield process


@pytest.fixture
def revyl(_revyl_server: FakeRevyl) -> FakeRevyl:
    _revyl_server.reset()
    return _revyl_server


def sample(source_type: str) -> bytes:
    """A realistic body for the type: its sample payload if one is named after it."""
    stem = source_type.replace("-", "")
    for path in sorted(Path(PAYLOADS).iterdir()):
        if path.name.replace("-", "").startswith(stem):
            return path.read_bytes()
    return json.dumps({"status": "success", "platform": "ios", "version": "1.0"}).encode()


def signed(source_type: str, body: bytes) -> dict[str, str]:
    source = build_source(
        source_type, typed_sources({source_type: CONFIGS[source_type]})[source_type]
    )
    try:
        return source.sign(body, SECRET, time.time(), f"msg_{uuid.uuid4().hex}")
    except Exception:  # some schemes read the body to sign (GitHub's event name)
        return source.sign(sample(source_type), SECRET, time.time(), f"msg_{uuid.uuid4().hex}")


def verifies(source_type: str, headers: dict[str, str], body: bytes) -> bool:
    source = build_source(
        source_type, typed_sources({source_type: CONFIGS[source_type]})[source_type]
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        source.verify(Delivery(lowered, body, time.time()), SECRET)
    except Unauthorized:
        return False
    except Exception:
        return False
    return True


def send(relay: FunctionProcess, source_type: str, body: bytes, headers: dict[str, str]):
    encoded = {k: v.encode("latin-1") for k, v in headers.items()}
    answer = requests.post(f"{relay.url}/{source_type}", data=body, headers=encoded, timeout=30)
    assert answer.status_code != 500, answer.text
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text
    return answer


def assert_relay_answer(answer: requests.Response) -> None:
    """The relay's own JSON answer (a source may reply in its own shape: Slack's Block Kit)."""
    data = answer.json()
    assert isinstance(data, dict)
    if "decision" not in data:
        assert answer.status_code < 300, answer.text  # a source's own reply (Block Kit)
        assert data
    else:
        assert data["decision"], data


SOURCE_TYPES = sorted(CONFIGS)
header_values = st.text(HEADER_CHARS, max_size=120).map(str.strip)


def header_names(source_type: str) -> list[str]:
    return sorted({*signed(source_type, sample(source_type)), "content-type", "x-anything"})


@pytest.mark.parametrize("source_type", SOURCE_TYPES)
@SETTINGS
@given(data=st.data())
def test_random_deliveries_never_fail_and_never_start_anything(relay, revyl, source_type, data):
    body = data.draw(
        st.one_of(
            st.binary(max_size=2048),
            st.text(max_size=500).map(str.encode),
            st.just(sample(source_type)),
        ),
        label="body",
    )
    headers = data.draw(
        st.dictionaries(st.sampled_from(header_names(source_type)), header_values), label="headers"
    )
    assume(not verifies(source_type, headers, body))
    answer = send(relay, source_type, body, headers)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["decision"] == "rejected"
    assert revyl.calls == []


@pytest.mark.parametrize("source_type", SOURCE_TYPES)
@SETTINGS
@given(data=st.data())
def test_mutated_signatures_bodies_and_headers_are_refused(relay, revyl, source_type, data):
    body = sample(source_type)
    headers = signed(source_type, body)
    mutation = data.draw(st.sampled_from(["body", "header", "drop", "non-ascii"]), label="what")
    if mutation == "body":
        at = data.draw(st.integers(0, len(body)), label="at")
        insert = data.draw(st.binary(min_size=1, max_size=8), label="insert")
        cut = data.draw(st.integers(0, 8), label="cut")
        body = body[:at] + insert + body[at + cut :]
    else:
        name = data.draw(st.sampled_from(sorted(headers)), label="header")
        if mutation == "drop":
            del headers[name]
        elif mutation == "header":
            headers[name] = data.draw(header_values, label="value")
        else:
            extra = data.draw(
                st.text(st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1)
            )
            headers[name] = headers[name][:-1] + extra
    assume(not verifies(source_type, headers, body))
    answer = send(relay, source_type, body, headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["decision"] == "rejected"
    assert revyl.calls == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def known_keys(source_type: str) -> list[str]:
    try:
        data = json.loads(sample(source_type))
    except ValueError:
        return ["text", "command", "payload"]
    return sorted(data) if isinstance(data, dict) else []


@pytest.mark.parametrize("source_type", SOURCE_TYPES)
@SETTINGS
@given(data=st.data())
def test_signed_random_bodies_never_fail(relay, revyl, source_type, data):
    keys = st.sampled_from(known_keys(source_type) or ["status"]) | st.text(max_size=12)
    payload = data.draw(st.dictionaries(keys, json_values, max_size=8), label="payload")
    if data.draw(st.booleans(), label="merge into the sample"):
        try:
            base = json.loads(sample(source_type))
            payload = {**base, **payload} if isinstance(base, dict) else payload
        except ValueError:
            pass
    body = json.dumps(payload).encode()
    headers = signed(source_type, body)
    answer = send(relay, source_type, body, headers)
    assert_relay_answer(answer)


# --- the promises under attack: replays, odd strings, deep nesting, repeated ids, big values ---


def source_of(source_type: str):
    return build_source(
        source_type, typed_sources({source_type: CONFIGS[source_type]})[source_type]
    )


def acted_on_samples(source_type: str) -> list[bytes]:
    """The sample deliveries this type reads as something to act on (a build, a command)."""
    source, found = source_of(source_type), []
    bodies = [p.read_bytes() for p in sorted(Path(PAYLOADS).iterdir())]
    for body in [*bodies, sample(source_type)]:
        try:
            headers = source.sign(body, SECRET, time.time(), "msg_first")
            lowered = {k.lower(): v for k, v in headers.items()}
            if not source.parse(Delivery(lowered, body, time.time())).ignored:
                found.append(body)
        except Exception:  # noqa: S110 - not this type's payload
            pass
    return found


@pytest.mark.parametrize("source_type", SOURCE_TYPES)
def test_the_event_key_is_made_of_signed_content_only(source_type):
    """A captured delivery resent with any header the signature does not cover changed (a new
    delivery GUID, another event type) is the same event, or nothing at all: never a new one."""
    source = source_of(source_type)
    bodies = acted_on_samples(source_type)
    assert bodies, f"no sample is an event {source_type} acts on"
    for body in bodies:
        headers = {k.lower(): v for k, v in source.sign(body, SECRET, time.time(), "m1").items()}
        key = source.parse(Delivery(headers, body, time.time())).key
        for name, value in headers.items():
            for changed in (str(uuid.uuid4()), value.upper(), f"{value}0", ""):
                mutated = Delivery({**headers, name: changed}, body, time.time())
                try:
                    source.verify(mutated, SECRET)
                    event = source.parse(mutated)
                except (Unauthorized, BadRequest):  # refused: a 401 or a 400
                    event = None
                assert event is None or event.ignored or event.key == key, (name, changed, key)


def github_delivery(body: bytes, event: str) -> dict[str, str]:
    headers = signed("github", body)
    return {**headers, "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4())}


def fresh_github_sample(event: str) -> dict[str, Any]:
    """A GitHub sample no other test sent: its ids are new."""
    name = {
        "release": "github-release-published.json",
        "workflow_run": "github-workflow-run-completed.json",
        "repository_dispatch": "github-repository-dispatch.json",
    }[event]
    data = json.loads((Path(PAYLOADS) / name).read_bytes())
    unique = uuid.uuid4().int % 10**12
    if event == "release":
        data["release"]["id"] = unique
    elif event == "workflow_run":
        data["workflow_run"]["id"] = unique
    else:
        data["client_payload"]["build_id"] = str(unique)
    return data


@pytest.mark.parametrize("event", ["release", "workflow_run", "repository_dispatch"])
def test_a_captured_github_delivery_resent_with_a_new_guid_starts_nothing(relay, revyl, event):
    body = json.dumps(fresh_github_sample(event)).encode()
    first = send(relay, "github", body, github_delivery(body, event))
    assert first.json()["decision"] == "triggered", first.text
    replayed = send(relay, "github", body, github_delivery(body, event))
    assert replayed.json()["decision"] == "duplicate", replayed.text
    assert replayed.json()["event"] == first.json()["event"]
    assert len(revyl.calls_to("/execute_test_id_async")) == 1


def test_a_github_re_run_is_a_new_event(relay, revyl):
    data = fresh_github_sample("workflow_run")
    for attempt in (1, 2):
        data["workflow_run"]["run_attempt"] = attempt
        body = json.dumps(data).encode()
        answer = send(relay, "github", body, github_delivery(body, "workflow_run"))
        assert answer.json()["decision"] == "triggered", answer.text
    assert len(revyl.calls_to("/execute_test_id_async")) == 2


def with_lone_surrogates(value: Any) -> Any:
    """Every string of a JSON value (keys too) with a lone surrogate appended."""
    if isinstance(value, dict):
        return {f"{k}\ud800": with_lone_surrogates(v) for k, v in value.items()} | {
            k: with_lone_surrogates(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [with_lone_surrogates(v) for v in value]
    return f"{value}\udfff" if isinstance(value, str) else value


def assert_every_log_line_is_json(relay: FunctionProcess) -> None:
    for line in relay.log_text().splitlines():
        if line.startswith("{"):
            json.loads(line)
        else:  # functions-framework's and gunicorn's own start-up lines
            assert line.startswith(("[", "relay ready")) or "Booting worker" in line, line


@pytest.mark.parametrize("source_type", SOURCE_TYPES)
def test_lone_surrogates_in_every_string_are_answered_in_json(relay, revyl, source_type):
    for body in acted_on_samples(source_type):
        try:
            data = json.loads(body)
        except ValueError:  # a form: percent-encoded, the reader decodes it leniently
            poisoned = body + b"%ED%A0%80&text=help%ED%A0%80"
        else:
            poisoned = json.dumps(with_lone_surrogates(data)).encode()
        answer = send(relay, source_type, poisoned, signed(source_type, poisoned))
        assert_relay_answer(answer)
        assert "\\ud800" not in answer.text
        assert "\\udfff" not in answer.text
    assert_every_log_line_is_json(relay)


def test_a_lone_surrogate_in_an_eas_field_is_replaced_and_redeliveries_are_duplicates(relay, revyl):
    data = json.loads((Path(PAYLOADS) / "eas-build-finished-ios.json").read_bytes())
    data["id"] = str(uuid.uuid4())
    body = json.dumps({**data, "gitRef": "x\ud800"}).encode()
    assert b"\\ud800" in body
    first = send(relay, "eas", body, signed("eas", body))
    assert first.json()["decision"] == "triggered", first.text
    assert first.json()["build"]["branch"] == "x\ufffd"
    again = send(relay, "eas", body, signed("eas", body))
    assert again.json()["decision"] == "duplicate", again.text
    (execute,) = revyl.calls_to("/execute_test_id_async")
    assert execute.headers["x-ci-branch"].encode("latin-1").decode() == "x\ufffd"
    assert_every_log_line_is_json(relay)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_body(source_type: str, depth: int) -> tuple[bytes, dict[str, str]]:
    if source_type == "github":
        data = fresh_github_sample("release")
        text = json.dumps(data)[:-1] + f', "deep": {nested(depth)}}}'
        body = urlencode({"payload": text}).encode()
        return body, {
            "X-GitHub-Event": "release",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_hex_hmac(SECRET, body, "sha256", "sha256="),
            "Content-Type": "application/x-www-form-urlencoded",
        }
    data = json.loads(sample(source_type))
    body = (json.dumps(data)[:-1] + f', "deep": {nested(depth)}}}').encode()
    return body, signed(source_type, body)


@pytest.mark.parametrize("source_type", ["eas", "github", "generic"])
def test_json_nested_deeper_than_the_limit_is_a_400(relay, revyl, source_type):
    for depth in (MAX_JSON_DEPTH, 1100, 100_000):
        body, headers = deep_body(source_type, depth)
        answer = send(relay, source_type, body, headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == (
            f"body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    assert revyl.calls == []
    body, headers = deep_body(source_type, MAX_JSON_DEPTH - 1)  # the object itself is a level
    answer = send(relay, source_type, body, headers)
    assert_relay_answer(answer)
    assert "nested" not in answer.json().get("reason", ""), answer.text


def test_the_same_test_named_several_ways_starts_once(relay, revyl):
    other = str(uuid.uuid4())
    given = [TEST, TEST.upper(), "{" + TEST + "}", f"urn:uuid:{TEST}", other, other.upper()]
    body = json.dumps({"status": "success", "test_ids": given}).encode()
    answer = send(relay, "generic", body, signed("generic", body))
    assert answer.json()["decision"] == "triggered", answer.text
    started = [c.json["test_id"] for c in revyl.calls_to("/execute_test_id_async")]
    assert sorted(started) == sorted([TEST, other])


def test_more_test_ids_than_the_limit_is_a_400_and_starts_nothing(relay, revyl):
    given = [str(uuid.uuid4()) for _ in range(MAX_TEST_IDS + 1)]
    body = json.dumps({"status": "success", "test_ids": given}).encode()
    answer = send(relay, "generic", body, signed("generic", body))
    assert answer.status_code == 400, answer.text
    assert f"at most {MAX_TEST_IDS} tests per delivery" in answer.json()["reason"]
    assert revyl.calls == []


def test_ci_header_values_sent_to_revyl_are_capped(relay, revyl):
    body = json.dumps({"status": "success", "branch": "b" * 10_000, "commit": "c" * 300}).encode()
    answer = send(relay, "generic", body, signed("generic", body))
    assert answer.json()["decision"] == "triggered", answer.text
    (execute,) = revyl.calls_to("/execute_test_id_async")
    assert execute.headers["x-ci-branch"] == "b" * MAX_HEADER_VALUE
    assert execute.headers["x-ci-commit-sha"] == "c" * MAX_HEADER_VALUE


def raw_request(relay: FunctionProcess, request: bytes) -> tuple[int, str, bytes]:
    """Send bytes as they are (what no HTTP client would send); the status, type and body."""
    with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)  # the sender is done: EOF, whatever it promised
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), body


@pytest.mark.parametrize(
    ("request_bytes", "says"),
    [
        (
            b"POST /eas HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n{}\r\n0\r\n\r\n",
            "the body could not be read (InvalidChunkSize)",
        ),
        (
            b"POST /eas HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}",
            "body ended after 2 of its 100 bytes (Content-Length)",
        ),
    ],
)
def test_a_body_that_cannot_be_read_whole_is_a_400(relay, revyl, request_bytes, says):
    status, content_type, body = raw_request(relay, request_bytes)
    assert (status, content_type) == (400, "application/json"), body
    assert json.loads(body)["reason"] == says
    assert_every_log_line_is_json(relay)


def test_a_path_longer_than_any_source_name_is_cut_in_the_answer(relay, revyl):
    answer = requests.post(f"{relay.url}/{'a' * 50_000}", data=b"{}", timeout=30)
    assert answer.status_code == 404
    assert "a" * 101 not in answer.json()["reason"]  # the path is cut at 100 characters


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /eas HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"POST /eas HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /eas HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
def test_what_the_web_server_refuses_before_the_relay_runs(relay, revyl, request_bytes, status):
    """gunicorn (functions-framework's server) answers these itself, in HTML, and the relay
    never sees them (no JSON, no log line). This test says when that changes."""
    assert raw_request(relay, request_bytes)[:2] == (status, "text/html")
    assert revyl.calls == []


def test_a_lone_surrogate_in_revyls_answer_is_answered_in_json(relay, revyl):
    odd = {"status": "queued\ud800", "message": "ok", "id": "x\udfff", "task_id": "x\udfff"}
    revyl.fail("/execute_test_id_async", Status(200, odd))
    body = json.dumps({"status": "success"}).encode()
    answer = send(relay, "generic", body, signed("generic", body))
    assert answer.json()["decision"] == "triggered", answer.text
    assert answer.json()["execution_ids"] == ["x\ufffd"]
    assert_every_log_line_is_json(relay)
