"""EAS and generic payloads → normalized builds (pure: no network, no server)."""

import base64
import json
import uuid

import pytest

from relay.config import SecretRef, SourceSettings
from relay.errors import BadRequest
from relay.sources import Delivery, known_types, settings_model, source_class
from relay.sources.eas import EasSource
from relay.sources.generic import MAX_TEST_IDS, GenericSource, read_build
from relay.sources.payload import MAX_JSON_DEPTH, json_object
from tests.payloads import GENERIC_HEADERS, GENERIC_TIMESTAMP, payload

SECRET = SecretRef(env="X")


def eas() -> EasSource:
    return EasSource("eas", SourceSettings(type="eas", secret=SECRET))


def generic() -> GenericSource:
    return GenericSource("ci", SourceSettings(type="generic", secret=SECRET))


def delivery(body: bytes, headers: dict | None = None) -> Delivery:
    return Delivery(headers or {}, body, GENERIC_TIMESTAMP)


def test_eas_finished_ios_build():
    event = eas().parse(delivery(payload("eas-build-finished-ios.json")))
    assert event.key == "eas:8c1a2f3e-5b7d-4e19-9a0c-2d6f4b8e1a73:finished"
    build = event.build
    assert build is not None
    assert (build.platform, build.app, build.version, build.build_number) == (
        "ios",
        "com.acme.shopper",
        "2.4.0",
        "187",
    )
    assert build.commit == "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
    assert build.profile == "preview"
    assert build.artifact_url == "https://expo.dev/artifacts/eas/pJ4xWq8tZcL2mNvB7rKd3e.ipa"
    assert build.artifacts[0].kind == "ipa"
    assert build.build_url.endswith("/builds/8c1a2f3e-5b7d-4e19-9a0c-2d6f4b8e1a73")
    assert build.branch is None


def test_eas_errored_is_ignored_with_the_reason():
    event = eas().parse(delivery(payload("eas-build-errored.json")))
    assert event.key == "eas:4b0e6a27-91c5-4d3f-8e2a-6f1b7c9d0e44:errored"
    assert event.ignored == "the build errored"


def test_eas_canceled_and_submit_are_ignored():
    canceled = json.loads(payload("eas-build-finished-android.json"))
    canceled["status"] = "canceled"
    assert eas().parse(delivery(json.dumps(canceled).encode())).ignored == "the build was canceled"
    submit = eas().parse(delivery(payload("eas-submit-finished.json")))
    assert "Submit" in (submit.ignored or "")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"text"',
        b"{}",
        b'{"id": "x"}',
        b"\xff\xfe",
        b'{"id":"x","status":"finished","platform":"web"}',
    ],
)
def test_eas_malformed_bodies_are_bad_requests(body):
    with pytest.raises(BadRequest):
        eas().parse(delivery(body))


def test_generic_standard_webhooks_sample():
    event = generic().parse(
        delivery(payload("standard-webhooks-build-finished.json"), GENERIC_HEADERS)
    )
    assert event.key == "ci:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    build = event.build
    assert build is not None
    assert build.system == "eas"  # the body says which system built it
    assert (build.platform, build.app, build.version, build.build_number) == (
        "ios",
        "com.acme.shopper",
        "2.4.0",
        "187",
    )
    assert (build.branch, build.pr_number) == ("feature/coupon-rounding", 412)
    assert build.artifact_url.endswith(".ipa")


def test_generic_bare_body_with_aliases_and_explicit_ids():
    body = {
        "platform": "Android",
        "app_id": "com.acme.shopper",
        "version": 3,
        "build_number": 42,
        "sha": "abc",
        "ref": "main",
        "pr_number": "#7",
        "artifact_url": "https://ci.example/app.apk",
        "build_version_id": "6C1E4D2F-9B5A-4A7F-8E3B-2D4C6F8A0B12",
        "test_ids": ["2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8"],
    }
    build = read_build(body, source="ci", system="ci")
    assert not isinstance(build, str)
    assert (
        build.platform,
        build.version,
        build.build_number,
        build.commit,
        build.branch,
        build.pr_number,
    ) == (
        "android",
        "3",
        "42",
        "abc",
        "main",
        7,
    )
    assert build.build_version_id == "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"
    assert build.test_ids == ("2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8",)
    assert build.system == "ci"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"test_ids": ["smoke"]}, "test_ids.0"),
        ({"build_version_id": "nope"}, "build_version_id"),
        ({"pr_number": "twelve"}, "pr_number"),
        ({"platform": "web"}, "platform"),
    ],
)
def test_generic_invalid_fields_name_the_field(body, message):
    with pytest.raises(BadRequest) as caught:
        read_build(body, source="ci", system="ci")
    assert message in caught.value.message


def test_generic_failed_builds_and_other_event_types_are_ignored():
    assert (
        read_build({"status": "failure"}, source="ci", system="ci")
        == "build status 'failure' is not a success"
    )
    body = json.dumps({"type": "build.started", "data": {}}).encode()
    assert "build.started" in (generic().parse(delivery(body, GENERIC_HEADERS)).ignored or "")


def test_every_source_module_is_discoverable():
    for source_type in known_types():
        assert source_class(source_type).type == source_type
    with pytest.raises(ValueError, match="unknown source type"):
        source_class("../etc")


def test_sign_is_the_inverse_of_verify():
    body = payload("eas-build-finished-ios.json")
    assert eas().sign(body, "test-eas-secret-0123456789", 0, "x") == {
        "expo-signature": "sha1=9deefcf95c9ff9730651ba5951a8f2c8cf570880"
    }
    body = payload("standard-webhooks-build-finished.json")
    headers = generic().sign(
        body,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        GENERIC_TIMESTAMP,
        GENERIC_HEADERS["webhook-id"],
    )
    assert headers == GENERIC_HEADERS


# --- odd shapes: a signed payload whose values have unexpected types ------------------------

ODD_SHAPE_SAMPLES = [  # (source type, sample, headers the sender adds)
    ("eas", "eas-build-finished-ios.json", {}),
    ("eas", "eas-build-finished-android.json", {}),
    ("generic", "standard-webhooks-build-finished.json", GENERIC_HEADERS),
    ("codemagic", "codemagic-build-finished.json", {"webhook-id": "b1"}),
    ("bitrise", "bitrise-build-finished.json", {"bitrise-event-type": "build/finished"}),
    ("app-store-connect", "appstoreconnect-build-upload.json", {}),
    ("github", "github-release-published.json", {"x-github-event": "release"}),
    ("github", "github-workflow-run-completed.json", {"x-github-event": "workflow_run"}),
    ("github", "github-repository-dispatch.json", {"x-github-event": "repository_dispatch"}),
]
ODD_VALUES = [7, "x", [1, "a", None], {"a": 1}, None, True]


def paths(value: object, at: tuple = ()) -> list[tuple]:
    """Every key/index path in a JSON value, containers included."""
    found = [at] if at else []
    if isinstance(value, dict):
        children = list(value.items())
    else:
        children = list(enumerate(value)) if isinstance(value, list) else []
    for key, child in children:
        found += paths(child, (*at, key))
    return found


def replaced(data: object, path: tuple, new: object) -> object:
    copy = json.loads(json.dumps(data))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return copy


@pytest.mark.parametrize(("source_type", "sample", "headers"), ODD_SHAPE_SAMPLES)
def test_any_value_of_an_odd_type_is_a_400_or_ignored_never_a_crash(source_type, sample, headers):
    from relay.answers import for_error
    from relay.errors import RelayError
    from relay.plugins import parse_config
    from relay.sources import build_source

    config = parse_config(f"sources:\n  s: {{type: {source_type}, secret: {{env: S}}}}\n")
    source = build_source("s", config.sources["s"])
    data = json.loads(payload(sample))
    headers = {"x-github-delivery": "d1", **{k.lower(): v for k, v in headers.items()}}
    for path in paths(data):
        for odd in ODD_VALUES:
            body = json.dumps(replaced(data, path, odd)).encode()
            status = 200
            try:
                source.parse(Delivery(headers, body, GENERIC_TIMESTAMP))
            except RelayError as exc:  # a 4xx saying what is wrong is fine
                status = for_error(exc).status
            assert status < 500, (path, odd)


def test_payload_shape_helpers():
    from relay.sources import as_dict, as_list, pr_number, read_platform

    assert (as_list([1]), as_list(5), as_list({"a": 1}), as_list(None)) == ([1], [], [], [])
    assert (as_dict({"a": 1}), as_dict([1]), as_dict("x")) == ({"a": 1}, {}, {})
    numbers = [412, "412", " #9 ", 0, -3, "0", "", None, True, "twelve", 1.5, [1], "٣"]
    assert [pr_number(v) for v in numbers] == [412, 412, 9] + [None] * 10
    assert [read_platform(v) for v in ("iOS", "android", None, "")] == [
        "ios",
        "android",
        None,
        None,
    ]
    with pytest.raises(BadRequest, match="EAS platform 'web' is neither ios nor android"):
        read_platform("web", "EAS platform")


def test_generic_empty_platform_means_not_given():
    build = read_build({"platform": "", "version": "1"}, source="ci", system="ci")
    assert not isinstance(build, str)
    assert build.platform is None


def test_json_object_bounds_nesting_at_the_limit():
    at_limit = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert json_object(f'{{"a": {at_limit}}}'.encode())["a"] is not None
    for depth in (MAX_JSON_DEPTH, 1100, 200_000):
        deeper = "[" * depth + "]" * depth
        with pytest.raises(BadRequest, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
            json_object(f'{{"a": {deeper}}}'.encode())
        with pytest.raises(BadRequest, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
            json_object(('{"a": ' + '{"b": ' * depth + "1" + "}" * depth + "}").encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"k\\ud800": ["x\\udfff", {"y": "\\ud83d"}]}',
        b'{"k\xed\xa0\x80": ["x\xed\xbf\xbf", {"y": "\xed\xa0\xbd"}]}',
    ],
)
def test_json_object_replaces_lone_surrogates_escaped_or_raw(body):
    data = json_object(body)
    assert data == {"k\ufffd": ["x\ufffd", {"y": "\ufffd"}]}
    json.dumps(data, ensure_ascii=False).encode()  # valid UTF-8 now
    assert json_object('{"pair": "\\ud83d\\ude00", "é": "ü"}'.encode()) == {
        "pair": "\U0001f600",
        "é": "ü",
    }


def test_generic_test_ids_are_canonical_once_each_and_at_most_the_limit():
    t1, t2 = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"
    spellings = [t1.upper(), "{" + t1 + "}", f"urn:uuid:{t1}", t2, t1, t2.replace("-", "")]
    build = read_build({"test_ids": spellings}, source="ci", system="ci")
    assert not isinstance(build, str)
    assert build.test_ids == (t1, t2)
    many = [str(uuid.UUID(int=n)) for n in range(MAX_TEST_IDS)]
    assert len(read_build({"test_ids": many}, source="ci", system="ci").test_ids) == MAX_TEST_IDS
    with pytest.raises(BadRequest, match=f"test_ids: at most {MAX_TEST_IDS} tests per delivery"):
        read_build({"test_ids": [*many, t1]}, source="ci", system="ci")


@pytest.mark.parametrize(
    ("source_type", "secret", "weak"),
    [
        ("eas", "short-secret", True),
        ("eas", "sixteen-chars-ok", False),
        ("bitrise", "x" * 15, True),
        ("generic", "whsec_" + base64.b64encode(b"k" * 15).decode(), True),
        ("generic", "whsec_" + base64.b64encode(b"k" * 24).decode(), False),
        ("codemagic", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", False),
        ("generic", "a-plain-secret-of-32-characters!", False),
    ],
)
def test_a_short_signing_secret_is_flagged(source_type, secret, weak):
    settings = settings_model(source_type)(type=source_type, secret=SecretRef(env="UNUSED"))
    problem = source_class(source_type)(source_type, settings).secret_problem(secret)
    assert (problem is not None) == weak, problem
