"""Bitrise: signatures and tokens, payload → build, enrichment from the (fake) Bitrise API."""

import json
import re
from collections.abc import Iterator

import pytest

from relay.answers import for_error
from relay.errors import BadRequest, Unauthorized, Unavailable, UpstreamError
from relay.models import Build, Event
from relay.plugins import parse_config
from relay.routing import pick_artifact
from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.bitrise_api import TOKEN, FakeBitrise, artifact
from relay.secrets import SecretManagerBackend, Secrets
from relay.signatures import verify_token
from relay.sources import Delivery, build_source, pr_number
from relay.sources.bitrise import BitriseSource, enriched_build
from tests.payloads import payload

SECRET = "test-bitrise-secret"
SAMPLE = "bitrise-build-finished.json"
SAMPLE_SIGNATURE = "sha256=ecebde096df1f69063e9b613b328ad88644fd2fb353764c0a3d318fa26c076ee"
BUILD_SLUG = "7feee0a4-61f4-4eb6-a019-368cf9ac0d82"
APP_SLUG = "305da28f92b6b419"
COMMIT = "3b1f0c9e5d7a4f2b8c6e0a1d3f5b7c9e1a2b4c6d"
FINISHED = {"bitrise-event-type": "build/finished"}


def source(extra: str = "") -> BitriseSource:
    config = parse_config(f"sources: {{bitrise: {{secret: {{env: S}}{extra}}}}}")
    made = build_source("bitrise", config.sources["bitrise"])
    assert isinstance(made, BitriseSource)
    return made


def delivery(body: bytes, headers: dict[str, str] | None = None) -> Delivery:
    return Delivery({k.lower(): v for k, v in (headers or {}).items()}, body, 0)


def sample_with(**changes) -> bytes:
    return json.dumps({**json.loads(payload(SAMPLE)), **changes}).encode()


# --- verify -----------------------------------------------------------------------------


def test_the_shared_sample_signature_verifies():
    source().verify(delivery(payload(SAMPLE), {"Bitrise-Hook-Signature": SAMPLE_SIGNATURE}), SECRET)


def test_bitrise_add_on_test_vector_verifies():
    body = b'{"app_slug":"test-app-slug"}'
    signature = "sha256=0d86929661b1c7b216ca6a7ef4abe740ee6dc07d4afc2f21d78c888235d88713"
    source().verify(delivery(body, {"Bitrise-Hook-Signature": signature}), "my-super-secret")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing Bitrise-Hook-Signature header"),
        ({"Bitrise-Hook-Signature": "sha256=" + "0" * 64}, "signature verification failed"),
        ({"Bitrise-Hook-Signature": SAMPLE_SIGNATURE.upper()[:20]}, "verification failed"),
        ({"Authorization": f"Bearer {SECRET}"}, "missing Bitrise-Hook-Signature"),
    ],
)
def test_bad_or_missing_signatures_are_refused(headers, message):
    with pytest.raises(Unauthorized, match=message) as refused:
        source().verify(delivery(payload(SAMPLE), headers), SECRET)
    assert SECRET not in refused.value.message


def test_signature_over_other_bytes_is_refused():
    body = payload(SAMPLE).replace(b"1342", b"1343")
    with pytest.raises(Unauthorized):
        source().verify(delivery(body, {"Bitrise-Hook-Signature": SAMPLE_SIGNATURE}), SECRET)


@pytest.mark.parametrize("value", [f"Bearer {SECRET}", f"bearer  {SECRET} ", SECRET])
def test_bearer_mode_accepts_the_token_with_or_without_the_scheme(value):
    bearer = source(", auth: bearer")
    bearer.verify(delivery(b"{}", {"Authorization": value}), SECRET)


def test_bearer_mode_with_a_custom_header():
    custom = source(", auth: bearer, header: X-Relay-Token")
    custom.verify(delivery(b"{}", {"X-Relay-Token": SECRET}), SECRET)
    with pytest.raises(Unauthorized, match="missing X-Relay-Token header"):
        custom.verify(delivery(b"{}", {"Authorization": f"Bearer {SECRET}"}), SECRET)
    with pytest.raises(Unauthorized, match="signature verification failed"):
        custom.verify(delivery(b"{}", {"X-Relay-Token": SECRET + "x"}), SECRET)


def test_sign_is_the_inverse_of_verify_in_both_modes():
    body = payload(SAMPLE)
    assert source().sign(body, SECRET, 0, "x") == {
        "Bitrise-Event-Type": "build/finished",
        "Bitrise-Hook-Signature": SAMPLE_SIGNATURE,
    }
    for extra in (", auth: bearer", ", auth: bearer, header: X-Relay-Token"):
        mode = source(extra)
        mode.verify(delivery(body, mode.sign(body, SECRET, 0, "x")), SECRET)


def test_verify_token_refuses_an_empty_header():
    with pytest.raises(Unauthorized, match="missing Authorization header"):
        verify_token("", secret=SECRET, header="Authorization")


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{}", "sources.bitrise.secret: set `secret: {secret: <Secret Manager name>}`"),
        ("{auth: bearer}", "with `auth: bearer`, to the token Bitrise sends"),
        ("{secret: {env: S}, auth: hmac}", "sources.bitrise.auth: Input should be 'signature'"),
        ("{secret: {env: S}, api: {url: x}}", "sources.bitrise.api.token: set `token:"),
        ("{secret: {env: S}, api: {token: {env: T}, timeout: 0}}", "api.timeout"),
    ],
)
def test_config_says_what_to_set(settings, message):
    from relay.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(f"sources: {{bitrise: {settings}}}")


def test_api_url_defaults_to_bitrise():
    api = source(", api: {token: {secret: bitrise-token}}").settings.api
    assert api is not None
    assert api.url == "https://api.bitrise.io"


# --- parse ----------------------------------------------------------------------------------


def test_the_shared_sample_is_a_finished_android_build():
    event = source().parse(delivery(payload(SAMPLE), FINISHED))
    assert event.key == f"bitrise:{BUILD_SLUG}:finished"
    assert event.extra == {"app_slug": APP_SLUG}
    build = event.build
    assert build is not None
    assert build.summary() == {
        "source": "bitrise",
        "system": "bitrise",
        "platform": "android",
        "app": None,
        "version": None,
        "build_number": "1342",
        "commit": None,
        "branch": "feature/coupon-rounding",
        "pr_number": 412,
        "profile": None,
        "workflow": "android-preview",
        "build_id": BUILD_SLUG,
        "build_url": f"https://app.bitrise.io/build/{BUILD_SLUG}",
        "run_id": BUILD_SLUG,
        "repository": None,
        "artifact_url": None,
        "build_version_id": None,
    }


def test_the_key_uses_the_configured_source_name():
    config = parse_config("sources: {ci-bitrise: {type: bitrise, secret: {env: S}}}")
    named = build_source("ci-bitrise", config.sources["ci-bitrise"])
    assert named.parse(delivery(payload(SAMPLE), FINISHED)).key.startswith("ci-bitrise:7feee0a4")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (0, "the build has not finished (build_status 0)"),
        (2, "the build failed (build_status 2)"),
        (3, "the build failed: aborted with failure (build_status 3)"),
        (4, "the build was aborted (build_status 4)"),
        (7, "build_status 7 is not 1 (success)"),
    ],
)
def test_unsuccessful_builds_are_ignored_with_the_reason(status, reason):
    event = source().parse(delivery(sample_with(build_status=status), FINISHED))
    assert event.build is None
    assert event.ignored == reason
    assert event.key == f"bitrise:{BUILD_SLUG}:finished"


def test_build_triggered_is_ignored():
    headers = {"Bitrise-Event-Type": "build/triggered"}
    event = source().parse(delivery(sample_with(build_status=0), headers))
    assert event.ignored == "Bitrise event 'build/triggered' is not build/finished"
    assert event.key == f"bitrise:{BUILD_SLUG}:triggered"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"[]", FINISHED, "JSON object"),
        (b"{", FINISHED, "not valid JSON"),
        (b'{"build_status": 1}', FINISHED, "needs `build_slug`"),
        (payload(SAMPLE), {}, "missing Bitrise-Event-Type header"),
        (sample_with(build_status="1"), FINISHED, "integer `build_status`"),
        (sample_with(build_status=True), FINISHED, "integer `build_status`"),
        (sample_with(app_slug=None), FINISHED, "needs `app_slug`"),
    ],
)
def test_malformed_deliveries_are_bad_requests(body, headers, message):
    with pytest.raises(BadRequest, match=message):
        source().parse(delivery(body, headers))


@pytest.mark.parametrize(
    ("workflow", "platform"),
    [
        ("android-preview", "android"),
        ("iOS_Release", "ios"),
        ("deploy", None),
        ("ios-android", None),
    ],
)
def test_platform_comes_from_the_workflow_name(workflow, platform):
    body = sample_with(build_triggered_workflow=workflow)
    build = source().parse(delivery(body, FINISHED)).build
    assert build is not None
    assert build.platform == platform


@pytest.mark.parametrize(("value", "number"), [(412, 412), ("#9", 9), (0, None), (None, None)])
def test_pull_request_ids(value, number):
    assert pr_number(value) == number


# --- enrichment, pure ---------------------------------------------------------------------------


def webhook_build(workflow: str | None = "deploy") -> Build:
    body = sample_with(build_triggered_workflow=workflow)
    build = source().parse(delivery(body, FINISHED)).build
    assert build is not None
    return build


DETAILS = {
    "commit_hash": COMMIT,
    "branch": "feature/coupon-rounding",
    "pull_request_id": 412,
    "triggered_workflow": "deploy",
    "build_number": 1342,
}
ITEMS = [
    artifact("a1", "app-release.aab", "android-aab"),
    artifact(
        "a2", "app-release-bitrise-signed.apk", "android-apk",
        package_name="com.acme.shopper", version_name="2.4.0", version_code="187",
    ),
    artifact("a3", "test-results.zip"),
    {"slug": "", "title": "broken entry"},
]  # fmt: skip


def test_enrichment_adds_commit_artifacts_and_infers_the_platform_from_them():
    build = enriched_build(webhook_build(), DETAILS, ITEMS, APP_SLUG)
    assert build.commit == COMMIT
    assert build.platform == "android"  # the workflow name "deploy" says nothing
    assert (build.app, build.version, build.build_number) == ("com.acme.shopper", "2.4.0", "1342")
    assert [a.name for a in build.artifacts] == [
        "app-release.aab",
        "app-release-bitrise-signed.apk",
        "test-results.zip",
    ]
    apk = pick_artifact(build, None)
    assert apk is not None
    assert apk.kind == "apk"
    assert apk.url is None
    assert apk.ref == f"/v0.1/apps/{APP_SLUG}/builds/{BUILD_SLUG}/artifacts/a2"
    chosen = pick_artifact(build, "*.zip")
    assert chosen is not None
    assert chosen.name == "test-results.zip"


def test_the_workflow_name_beats_the_artifacts_for_the_platform():
    items = [artifact("i1", "Shopper.ipa", "ios-ipa", bundle_id="com.acme", version="3.0")]
    build = enriched_build(
        webhook_build(), {**DETAILS, "triggered_workflow": "android-qa"}, items, APP_SLUG
    )
    assert build.platform == "android"
    assert build.workflow == "android-qa"
    assert build.app is None  # the only installable is for the other platform


def test_enrichment_keeps_the_webhook_fields_the_api_leaves_out():
    build = enriched_build(webhook_build("ios-beta"), {}, [], APP_SLUG)
    assert (build.platform, build.branch, build.pr_number, build.commit) == (
        "ios", "feature/coupon-rounding", 412, None,
    )  # fmt: skip
    assert build.artifacts == ()


# --- enrichment and links against the fake Bitrise API ------------------------------------------


@pytest.fixture(scope="module")
def _bitrise() -> Iterator[FakeBitrise]:
    with FakeBitrise() as server:
        yield server


@pytest.fixture
def bitrise(_bitrise: FakeBitrise) -> FakeBitrise:
    _bitrise.reset()
    _bitrise.add_build(APP_SLUG, BUILD_SLUG, ITEMS[:3], **DETAILS)
    return _bitrise


def api_source(fake: FakeBitrise, timeout: float = 2) -> BitriseSource:
    return source(f", api: {{url: {fake.url}, token: {{env: BITRISE_TOKEN}}, timeout: {timeout}}}")


def secrets(token: str = TOKEN) -> Secrets:
    return Secrets(
        SecretManagerBackend(), project=None, ttl_seconds=0, environ={"BITRISE_TOKEN": token}
    )


def finished_event(src: BitriseSource) -> Event:
    return src.parse(delivery(payload(SAMPLE), FINISHED))


def test_enrich_reads_the_build_and_every_artifact_page(bitrise):
    many = [artifact(f"x{n}", f"log-{n}.txt") for n in range(60)] + ITEMS[:3]
    bitrise.add_build(APP_SLUG, BUILD_SLUG, many, **DETAILS)
    src = api_source(bitrise)
    event = src.enrich(finished_event(src), secrets())
    assert event.build is not None
    assert event.build.commit == COMMIT
    assert len(event.build.artifacts) == 63
    assert event.build.platform == "android"
    pages = bitrise.calls_to("/artifacts")
    assert [c.query.get("next") for c in pages] == [None, "50"]
    assert all(c.headers["authorization"] == TOKEN for c in bitrise.calls)


def test_artifact_link_mints_a_fresh_expiring_url_each_time(bitrise):
    src = api_source(bitrise)
    build = src.enrich(finished_event(src), secrets()).build
    assert build is not None
    apk = pick_artifact(build, None)
    assert apk is not None
    first = src.artifact_link(build, apk, secrets())
    second = src.artifact_link(build, apk, secrets())
    assert first.url != second.url
    assert bitrise.minted == [first.url, second.url]
    assert "/downloads/a2/app-release-bitrise-signed.apk" in first.url
    assert first.headers is None  # the link is pre-signed: Revyl sends no Bitrise token


def test_without_api_settings_nothing_is_called(bitrise):
    src = source()
    event = finished_event(src)
    assert src.enrich(event, secrets()) is event
    assert bitrise.calls == []


@pytest.mark.parametrize(
    ("path_part", "reply", "error", "message"),
    [
        (f"/builds/{BUILD_SLUG}", json_reply(404, {"message": "Not Found"}), UpstreamError,
         "the Bitrise API refused (404): Not Found"),
        ("/artifacts", json_reply(403, {"message": "Forbidden"}), UpstreamError,
         "refused (403)"),
        ("/v0.1", json_reply(500, {"message": "boom"}), Unavailable,
         "the Bitrise API answered 500"),
        ("/v0.1", Reply(200, b"<html>maintenance</html>"), UpstreamError, "non-JSON"),
        ("/v0.1", json_reply(200, {"nothing": True}), UpstreamError, "without the expected `data`"),
    ],
)  # fmt: skip
def test_api_failures_become_relay_errors(bitrise, path_part, reply, error, message):
    bitrise.fail(path_part, reply)
    src = api_source(bitrise)
    with pytest.raises(error, match=re.escape(message)):
        src.enrich(finished_event(src), secrets())


def test_a_wrong_token_is_a_502_naming_bitrise_not_the_token(bitrise):
    src = api_source(bitrise)
    with pytest.raises(UpstreamError, match=r"the Bitrise API refused \(401\)") as refused:
        src.enrich(finished_event(src), secrets("wrong-token"))
    assert for_error(refused.value).status == 502
    assert "wrong-token" not in refused.value.message


def test_a_slow_api_is_a_503_to_retry(bitrise):
    bitrise.fail("/v0.1", Reply(200, b"{}", delay=3))
    src = api_source(bitrise, timeout=0.3)
    with pytest.raises(Unavailable, match=re.escape("did not answer in 0.3s")) as slow:
        src.enrich(finished_event(src), secrets())
    assert for_error(slow.value).status == 503
    assert for_error(slow.value).headers["Retry-After"]


def test_a_link_without_a_url_is_a_502(bitrise):
    src = api_source(bitrise)
    build = src.enrich(finished_event(src), secrets()).build
    assert build is not None
    bitrise.fail("/artifacts/a2", json_reply(200, {"data": {"slug": "a2"}}))
    with pytest.raises(UpstreamError, match="no expiring_download_url"):
        src.artifact_link(build, build.artifacts[1], secrets())
