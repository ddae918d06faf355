"""App Store Connect: signatures, payload → event, the ES256 token, enrichment from the fake API."""

import json
import re
from collections.abc import Iterator

import jwt
import pytest

from relay.answers import for_error
from relay.errors import (
    BadRequest,
    ConfigError,
    Unauthorized,
    Unavailable,
    UpstreamError,
)
from relay.models import Event
from relay.plugins import parse_config
from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.asc_api import ISSUER_ID, KEY_ID, FakeAppStoreConnect, new_key
from relay.secrets import SecretManagerBackend, Secrets
from relay.sources import Delivery, build_source
from relay.sources.app_store_connect import (
    TOKEN_LIFETIME,
    AppStoreConnectSource,
    AscBuild,
    TokenCache,
    mint_token,
    pem_key,
    read_asc_build,
)
from tests.payloads import payload

SECRET = "test-asc-secret"
SAMPLE = "appstoreconnect-build-upload.json"
SAMPLE_SIGNATURE = "hmacsha256=844f38422f6604375bb64afae4f5d256746a88f565bb3349bf7680358c748309"
EVENT_ID = "1239d9f7-12b5-4456-8859-12b04e6e8445"
UPLOAD_ID = "e59c1dca-4f3b-4d2a-9c8e-7b6a5f4e3d21"


P8, PUBLIC = new_key()


def source(extra: str = "") -> AppStoreConnectSource:
    config = parse_config(f"sources: {{app-store-connect: {{secret: {{env: S}}{extra}}}}}")
    made = build_source("app-store-connect", config.sources["app-store-connect"])
    assert isinstance(made, AppStoreConnectSource)
    return made


def delivery(body: bytes, headers: dict[str, str] | None = None) -> Delivery:
    return Delivery({k.lower(): v for k, v in (headers or {}).items()}, body, 0)


def sample_with(**attributes) -> bytes:
    data = json.loads(payload(SAMPLE))
    data["data"]["attributes"] = {**data["data"]["attributes"], **attributes}
    return json.dumps(data).encode()


# --- verify -------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [SAMPLE_SIGNATURE, SAMPLE_SIGNATURE.split("=", 1)[1]])
def test_the_shared_sample_verifies_with_or_without_the_prefix(signature):
    source().verify(delivery(payload(SAMPLE), {"X-Apple-Signature": signature}), SECRET)


def test_apples_published_vector_verifies():
    signature = "hmacsha256=7f062172b01cb00b53ca068614674a3d982a34062a0f5d37687d5e3377e54657"
    source().verify(
        delivery(b"Hello, World!", {"x-apple-signature": signature}), "This is my secret"
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing x-apple-signature header"),
        ({"x-apple-signature": "hmacsha256=" + "0" * 64}, "signature verification failed"),
        ({"x-apple-signature": "sha256=" + SAMPLE_SIGNATURE[11:]}, "verification failed"),
    ],
)
def test_bad_or_missing_signatures_are_refused(headers, message):
    with pytest.raises(Unauthorized, match=message):
        source().verify(delivery(payload(SAMPLE), headers), SECRET)


def test_sign_is_the_inverse_of_verify():
    headers = source().sign(payload(SAMPLE), SECRET, 0, "x")
    assert headers == {"x-apple-signature": SAMPLE_SIGNATURE}


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{}", "sources.app-store-connect.secret: set `secret: {secret: <Secret Manager name>}`"),
        ("{secret: {env: S}, api: {issuer_id: a, key_id: b}}", "api.private_key: Field required"),
        ("{secret: {env: S}, api: {key_id: b, private_key: {secret: p}}}", "api.issuer_id"),
        (
            "{secret: {env: S}, api: {issuer_id: a, key_id: b, private_key: p8}}",
            "api.private_key: a secret is never written in the config: write `{secret: NAME}`",
        ),
        (
            "{secret: {env: S}, api: {issuer_id: a, key_id: b, private_key: {secret: p},"
            " token: {secret: t}}}",
            "called with an API key (issuer_id, key_id, private_key), not `token`",
        ),
    ],
)
def test_config_says_what_to_set(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(f"sources: {{app-store-connect: {settings}}}")


def test_issuer_and_key_id_may_be_values_or_secrets():
    api = source(
        ", api: {issuer_id: {secret: asc-issuer}, key_id: 2X9R4HXF34,"
        " private_key: {secret: asc-p8}}"
    ).settings.api
    assert api is not None
    assert api.url == "https://api.appstoreconnect.apple.com"
    assert api.key_id == "2X9R4HXF34"
    assert api.issuer_id.describe() == "secret asc-issuer"  # type: ignore[union-attr]


# --- parse ------------------------------------------------------------------------------------


def test_the_shared_sample_is_a_finished_upload_holding_only_ids():
    event = source().parse(delivery(payload(SAMPLE)))
    assert event.key == f"app-store-connect:{EVENT_ID}"
    assert event.extra == {"build_upload": UPLOAD_ID}
    build = event.build
    assert build is not None
    assert (build.system, build.build_id, build.platform, build.version) == (
        "app-store-connect",
        UPLOAD_ID,
        None,
        None,
    )


def test_the_key_uses_the_configured_source_name():
    config = parse_config("sources: {asc: {type: app-store-connect, secret: {env: S}}}")
    named = build_source("asc", config.sources["asc"])
    assert named.parse(delivery(payload(SAMPLE))).key == f"asc:{EVENT_ID}"


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"newState": "PROCESSING"}, "the build upload is still processing (newState PROCESSING)"),
        ({"newState": "FAILED"}, "App Store Connect could not process the build upload"),
        ({"newState": "AWAITING_UPLOAD"}, "build upload state 'AWAITING_UPLOAD' is not COMPLETE"),
        ({"newState": None}, "build upload state None is not COMPLETE"),
    ],
)
def test_unfinished_and_failed_uploads_are_ignored_with_the_reason(attributes, reason):
    event = source().parse(delivery(sample_with(**attributes)))
    assert event.build is None
    assert (event.ignored or "").startswith(reason)


def test_new_value_is_read_like_new_state():
    data = json.loads(payload(SAMPLE))
    data["data"]["attributes"] = {"oldValue": "PROCESSING", "newValue": "COMPLETE"}
    assert source().parse(delivery(json.dumps(data).encode())).build is not None


@pytest.mark.parametrize(
    "data",
    [
        {"type": "webhookPingCreated", "id": "ping-1", "attributes": {}},
        {"type": "webhookPings", "attributes": {"ping": True}},
        {"type": "somethingElse", "id": "x", "attributes": {"ping": True}},
    ],
)
def test_pings_are_ignored(data):
    event = source().parse(delivery(json.dumps({"data": data}).encode()))
    assert event.ignored == "App Store Connect ping"


def test_other_event_types_are_ignored():
    body = {"data": {"type": "appStoreVersionAppVersionStateUpdated", "id": "e1", "attributes": {}}}
    event = source().parse(delivery(json.dumps(body).encode()))
    assert event.ignored == (
        "event type 'appStoreVersionAppVersionStateUpdated' is not buildUploadStateUpdated"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "JSON object"),
        (b"{}", "needs a `data` object"),
        (b'{"data": {"type": "buildUploadStateUpdated"}}', "needs `data.id`"),
        (
            b'{"data": {"type": "buildUploadStateUpdated", "id": "e",'
            b' "attributes": {"newState": "COMPLETE"}}}',
            "needs data.relationships.instance.data.id",
        ),
    ],
)
def test_malformed_payloads_are_bad_requests(body, message):
    with pytest.raises(BadRequest, match=re.escape(message)):
        source().parse(delivery(body))


# --- the token ----------------------------------------------------------------------------------


def test_the_token_is_an_es256_jwt_apple_accepts():
    token = mint_token(ISSUER_ID, KEY_ID, P8, now=1_764_340_000)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"], header["typ"]) == ("ES256", KEY_ID, "JWT")
    claims = jwt.decode(
        token, PUBLIC, algorithms=["ES256"], audience="appstoreconnect-v1",
        options={"verify_exp": False},
    )  # fmt: skip
    assert claims == {
        "iss": ISSUER_ID,
        "iat": 1_764_340_000,
        "exp": 1_764_340_000 + TOKEN_LIFETIME,
        "aud": "appstoreconnect-v1",
    }
    assert TOKEN_LIFETIME <= 20 * 60


def test_a_one_line_key_with_escaped_newlines_works():
    one_line = P8.strip().replace("\n", "\\n")
    assert pem_key(one_line) == P8.strip()
    jwt.decode(mint_token(ISSUER_ID, KEY_ID, one_line, 0), PUBLIC, algorithms=["ES256"],
               audience="appstoreconnect-v1", options={"verify_exp": False})  # fmt: skip


def test_the_token_is_cached_until_shortly_before_it_expires():
    now = [1_000_000.0]
    cache = TokenCache(clock=lambda: now[0])
    first = cache.token(ISSUER_ID, KEY_ID, P8)
    now[0] += TOKEN_LIFETIME - 61
    assert cache.token(ISSUER_ID, KEY_ID, P8) == first
    now[0] += 2
    renewed = cache.token(ISSUER_ID, KEY_ID, P8)
    assert renewed != first
    other_key, _ = new_key()
    assert cache.token(ISSUER_ID, KEY_ID, other_key) != renewed


def test_a_minted_token_is_masked_in_logs_and_answers_like_a_secret():
    from relay.logs import scrub

    token = TokenCache(clock=lambda: 1_234_567.0).token(ISSUER_ID, KEY_ID, P8)
    assert scrub(f'{{"authorization": "Bearer {token}"}}') == '{"authorization": "Bearer ***"}'


# --- reading Apple's documents, pure ----------------------------------------------------------


UPLOAD_DOC = {
    "data": {
        "type": "buildUploads",
        "id": UPLOAD_ID,
        "attributes": {
            "cfBundleShortVersionString": "2.4.0",
            "cfBundleVersion": "187",
            "platform": "IOS",
        },
        "relationships": {"build": {"data": {"type": "builds", "id": "b-1"}}},
    }
}
BUILD_DOC = {
    "data": {"type": "builds", "id": "b-1", "attributes": {"version": "187"}},
    "included": [
        {"type": "preReleaseVersions", "id": "p", "attributes": {"version": "2.4.0",
                                                                 "platform": "IOS"}},
        {"type": "apps", "id": "1", "attributes": {"bundleId": "com.acme.shopper"}},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("upload", "build"),
    [(UPLOAD_DOC, BUILD_DOC), (None, BUILD_DOC)],
    ids=["upload-and-build", "build-only"],
)
def test_both_readings_give_the_same_build(upload, build):
    assert read_asc_build(upload, build) == AscBuild(
        build_id="b-1",
        version="2.4.0",
        build_number="187",
        platform="IOS",
        bundle_id="com.acme.shopper",
    )


def test_an_upload_alone_gives_everything_but_the_bundle_id():
    assert read_asc_build(UPLOAD_DOC, None) == AscBuild(None, "2.4.0", "187", "IOS", None)


# --- enrichment against the fake App Store Connect API ----------------------------------------


@pytest.fixture(scope="module")
def _asc() -> Iterator[FakeAppStoreConnect]:
    with FakeAppStoreConnect(PUBLIC) as server:
        yield server


@pytest.fixture
def asc(_asc: FakeAppStoreConnect) -> FakeAppStoreConnect:
    _asc.reset()
    _asc.public_key_pem = PUBLIC
    return _asc


def api_source(fake: FakeAppStoreConnect, timeout: float = 2) -> AppStoreConnectSource:
    return source(
        f", api: {{url: {fake.url}, issuer_id: {{env: ASC_ISSUER}}, key_id: {KEY_ID},"
        f" private_key: {{env: ASC_P8}}, timeout: {timeout}}}"
    )


def secrets(p8: str = P8) -> Secrets:
    environ = {"ASC_ISSUER": ISSUER_ID, "ASC_P8": p8}
    return Secrets(SecretManagerBackend(), project=None, ttl_seconds=0, environ=environ)


def enrich(src: AppStoreConnectSource, p8: str = P8) -> Event:
    return src.enrich(src.parse(delivery(payload(SAMPLE))), secrets(p8))


def test_enrich_reads_the_upload_then_its_build(asc):
    build_id = asc.add_upload(
        UPLOAD_ID, version="2.4.0", build_number="187", bundle_id="com.acme.shopper"
    )
    event = enrich(api_source(asc))
    build = event.build
    assert build is not None
    assert (build.platform, build.app, build.version, build.build_number, build.build_id) == (
        "ios", "com.acme.shopper", "2.4.0", "187", build_id,
    )  # fmt: skip
    assert [(c.path, c.query) for c in asc.calls] == [
        (f"/v1/buildUploads/{UPLOAD_ID}", {"include": "build"}),
        (f"/v1/builds/{build_id}", {"include": "preReleaseVersion,app"}),
    ]


def test_enrich_falls_back_to_reading_the_id_as_a_build(asc):
    asc.add_upload(UPLOAD_ID, version="2.4.0", build_number="188", bundle_id="com.acme.shopper",
                   upload_known=False)  # fmt: skip
    build = enrich(api_source(asc)).build
    assert build is not None
    assert (build.version, build.build_number, build.app, build.build_id) == (
        "2.4.0", "188", "com.acme.shopper", UPLOAD_ID,
    )  # fmt: skip


def test_an_upload_without_its_build_keeps_what_the_upload_says(asc):
    asc.add_upload(UPLOAD_ID, version="2.4.0", build_number="189", bundle_id="com.acme.shopper",
                   link_build=False)  # fmt: skip
    build = enrich(api_source(asc)).build
    assert build is not None
    assert (build.version, build.build_number, build.platform, build.app) == (
        "2.4.0", "189", "ios", None,
    )  # fmt: skip
    assert asc.calls[1].path == f"/v1/builds/{UPLOAD_ID}"  # tried, answered 404


def test_a_macos_upload_is_ignored(asc):
    asc.add_upload(
        UPLOAD_ID, version="2.4.0", build_number="7", bundle_id="com.acme.mac", platform="MAC_OS"
    )
    event = enrich(api_source(asc))
    assert event.build is None
    assert event.ignored == "the build is for MAC_OS, not iOS"


def test_the_token_is_reused_across_deliveries(asc):
    asc.add_upload(UPLOAD_ID, version="2.4.0", build_number="187", bundle_id="com.acme.shopper")
    src = api_source(asc)
    enrich(src)
    enrich(src)
    assert len(asc.calls) == 4
    assert len(asc.tokens) == 1


def test_an_unknown_upload_is_a_502(asc):
    with pytest.raises(UpstreamError, match="knows no build upload or build") as failed:
        enrich(api_source(asc))
    assert for_error(failed.value).status == 502


def test_a_key_apple_does_not_know_is_a_502_with_apples_words(asc):
    asc.add_upload(UPLOAD_ID, version="2.4.0", build_number="187", bundle_id="com.acme.shopper")
    asc.public_key_pem = new_key()[1]
    with pytest.raises(UpstreamError, match=re.escape("refused (401): Provide a properly")):
        enrich(api_source(asc))


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            json_reply(500, {"errors": [{"status": "500"}]}),
            "the App Store Connect API answered 500",
        ),
        (json_reply(429, {}), "answered 429"),
        (Reply(200, b"{}", delay=3), "did not answer in 0.3s"),
    ],
)
def test_a_failing_or_slow_api_is_a_503(asc, reply, message):
    asc.add_upload(UPLOAD_ID, version="2.4.0", build_number="187", bundle_id="com.acme.shopper")
    asc.fail("/v1/", reply)
    with pytest.raises(Unavailable, match=re.escape(message)) as failed:
        enrich(api_source(asc, timeout=0.3))
    assert for_error(failed.value).status == 503


def test_a_forbidden_build_is_a_502_not_a_fallback(asc):
    asc.add_upload(UPLOAD_ID, version="2.4.0", build_number="187", bundle_id="com.acme.shopper")
    asc.fail("/v1/builds/", json_reply(403, {"errors": [{"title": "FORBIDDEN", "detail": "role"}]}))
    with pytest.raises(UpstreamError, match=re.escape("refused (403): role")):
        enrich(api_source(asc))


def test_a_key_that_is_not_a_p8_is_a_503_naming_the_setting_without_the_key(asc):
    message = "sources.app-store-connect.api.private_key (env ASC_P8) is not a .p8 EC private key"
    with pytest.raises(Unavailable, match=re.escape(message)) as failed:
        enrich(
            api_source(asc), p8="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"
        )
    assert (for_error(failed.value).status, for_error(failed.value).headers) == (
        503,
        {"Retry-After": "30"},
    )
    assert "not a key" not in failed.value.message
    assert asc.calls == []
