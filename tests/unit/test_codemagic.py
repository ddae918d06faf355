"""The `codemagic` source: the publishing script's signed body (pure), and the public-URL
call for artifacts against a fake Codemagic API on loopback."""

from __future__ import annotations

import json
import time

import pytest

from relay.errors import BadRequest, Unauthorized, Unavailable, UnprocessableBuild, UpstreamError
from relay.plugins import parse_config
from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.codemagic_api import FakeCodemagicApi
from relay.secrets import Secrets
from relay.sources import Delivery, build_source
from relay.sources.codemagic import CodemagicSource
from tests.payloads import payload

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SAMPLE = "codemagic-build-finished.json"
BUILD_ID = "6855b7a2ace9fb1462f5063f"
NOW = 1764339861.0
APK_PATH = (
    "/artifacts/2e7564b2-9ffa-40c2-b9e0-8980436ac717/81c5a723-b162-488a-854e-3f5f7fdfb22f/"
    "app-release.apk"
)
# What examples/codemagic.yaml's script builds for an iOS simulator build with no pull request
# (jq -c output; the end-to-end test runs the script itself).
SCRIPT_BODY = {
    "event": "build.finished",
    "status": "success",
    "buildId": "6855c0ffee0000000000ab12",
    "projectId": "6852b56f44dbac3d959a5e97",
    "workflowId": "",
    "workflowName": "iOS simulator",
    "buildNumber": "57",
    "buildUrl": "https://codemagic.io/app/6852b56f44dbac3d959a5e97/build/6855c0ffee0000000000ab12",
    "git": {
        "repoSlug": "acme/shopper",
        "branch": "main",
        "commit": "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d",
        "tag": "",
        "pullRequest": False,
        "pullRequestNumber": "",
    },
    "artifacts": [
        {
            "name": "Runner.app",
            "type": "app",
            "url": "https://api.codemagic.io/artifacts/aa/bb/Runner.app.zip",
            "md5": "d2884be6985dad3ffc4d6f85b3a3642a",
            "versionName": "2.4.0",
            "bundleId": "com.acme.shopper",
        }
    ],
}


def source(extra: str = "") -> CodemagicSource:
    config = parse_config(f"sources:\n  codemagic: {{secret: {{env: S}}{extra}}}\n")
    built = build_source("codemagic", config.sources["codemagic"])
    assert isinstance(built, CodemagicSource)
    return built


def signed(body: bytes, secret: str = SECRET, now: float = NOW, msg_id: str = BUILD_ID) -> Delivery:
    headers = source().sign(body, secret, now, msg_id)
    return Delivery({k.lower(): v for k, v in headers.items()}, body, NOW)


def body_with(**changes) -> bytes:
    data = json.loads(payload(SAMPLE))
    data.update(changes)
    return json.dumps(data).encode()


def test_the_sample_is_a_build():
    delivery = signed(payload(SAMPLE))
    source().verify(delivery, SECRET)
    event = source().parse(delivery)
    assert event.key == f"codemagic:{BUILD_ID}"
    build = event.build
    assert (build.system, build.platform, build.app, build.version, build.build_number) == (
        "codemagic",
        "android",
        "com.acme.shopper",
        "2.4.0",
        "215",
    )
    assert (build.commit, build.branch, build.pr_number, build.repository) == (
        "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d",
        "feature/coupon-rounding",
        412,
        "acme/shopper",
    )
    assert (build.workflow, build.build_id, build.run_id) == ("android-preview", BUILD_ID, BUILD_ID)
    assert build.build_url.endswith(f"/build/{BUILD_ID}")
    assert [(a.name, a.kind) for a in build.artifacts] == [
        ("app-release.apk", "apk"),
        ("logs.txt", "txt"),
    ]


def test_the_script_body_is_a_build():
    build = source().parse(signed(json.dumps(SCRIPT_BODY).encode())).build
    assert (build.platform, build.app, build.version, build.workflow) == (
        "ios",
        "com.acme.shopper",
        "2.4.0",
        "iOS simulator",  # CM_WORKFLOW_ID empty: the name
    )
    assert (build.pr_number, build.branch) == (None, "main")
    assert build.artifacts[0].kind == "zip"


@pytest.mark.parametrize(
    ("git", "number"),
    [
        ({"pullRequest": "true", "pullRequestNumber": "77"}, 77),
        ({"pullRequest": True, "pullRequestNumber": 77}, 77),
        ({"pullRequest": "false", "pullRequestNumber": "77"}, None),
        ({"pullRequest": False, "pullRequestNumber": ""}, None),
        ({"pullRequestNumber": "#9"}, 9),
        ({"pullRequestNumber": "abc"}, None),
        ({}, None),
    ],
)
def test_pull_request_number_counts_only_for_pull_requests(git, number):
    build = source().parse(signed(body_with(git=git))).build
    assert build.pr_number == number


def test_platform_comes_from_the_body_or_the_artifacts():
    both = [
        {"name": "app.apk", "url": "https://x/app.apk", "versionName": "1", "bundleId": "a.b"},
        {"name": "App.ipa", "url": "https://x/App.ipa", "versionName": "2", "bundleId": "c.d"},
    ]
    build = source().parse(signed(body_with(artifacts=both))).build
    assert (build.platform, build.version, build.app) == (None, "1", "a.b")
    build = source().parse(signed(body_with(artifacts=both, platform="iOS"))).build
    assert (build.platform, build.version, build.app) == ("ios", "2", "c.d")
    build = source().parse(signed(body_with(artifacts=[]))).build
    assert (build.platform, build.version, build.artifacts) == (None, None, ())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": "failure"}, "the build did not succeed (status 'failure')"),
        ({"status": "canceled"}, "the build did not succeed (status 'canceled')"),
        ({"event": "build.started"}, "event 'build.started' is not build.finished"),
    ],
)
def test_failed_builds_and_other_events_are_ignored(changes, reason):
    event = source().parse(signed(body_with(**changes)))
    assert (event.key, event.ignored, event.build) == (f"codemagic:{BUILD_ID}", reason, None)


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"{}", b'{"status": "success"}', b'{"buildId": "x"}', body_with(platform="web")],
)
def test_malformed_bodies_are_bad_requests(body):
    with pytest.raises(BadRequest):
        source().parse(signed(body))


@pytest.mark.parametrize(
    ("secret", "sent_at"),
    [("whsec_" + "A" * 32, NOW), (SECRET, NOW - 301), (SECRET, NOW + 400)],
)
def test_wrong_secret_or_stale_timestamp_is_refused(secret, sent_at):
    with pytest.raises(Unauthorized):
        source().verify(signed(payload(SAMPLE), secret, sent_at), SECRET)


def test_unsigned_delivery_is_refused():
    with pytest.raises(Unauthorized, match="missing webhook-id"):
        source().verify(Delivery({}, payload(SAMPLE), NOW), SECRET)


def test_settings_defaults():
    settings = source().settings
    assert (settings.api.url, settings.api.token, settings.public_url_ttl) == (
        "https://api.codemagic.io",
        None,
        900,
    )
    with pytest.raises(Exception, match=r"sources.codemagic.secret: Field required: every"):
        parse_config("sources:\n  codemagic: {api: {token: {secret: t}}}\n")


# the public-URL call, on loopback


@pytest.fixture(scope="module")
def codemagic_api():
    with FakeCodemagicApi(token="cm_unit") as server:
        yield server


@pytest.fixture
def api(codemagic_api):
    codemagic_api.reset()
    return codemagic_api


def secrets() -> Secrets:
    return Secrets(None, project=None, ttl_seconds=0, environ={"CM_TOKEN": "cm_unit"})  # type: ignore[arg-type]


def with_api(api, token: bool = True) -> CodemagicSource:
    token_yaml = ", token: {env: CM_TOKEN}" if token else ""
    return source(f", api: {{url: '{api.url}', timeout: 0.5{token_yaml}}}, public_url_ttl: 600")


def test_a_codemagic_artifact_is_handed_over_as_a_short_lived_public_url(api):
    codemagic = with_api(api)
    build = codemagic.parse(signed(payload(SAMPLE))).build
    before = int(time.time())
    link = codemagic.artifact_link(build, build.artifacts[0], secrets())
    (minted,) = api.minted
    assert link.url == minted["url"]
    assert link.headers is None  # the Codemagic token never leaves the relay
    assert before + 600 <= minted["expiresAt"] <= int(time.time()) + 600
    (call,) = api.calls
    assert call.path == APK_PATH + "/public-url"
    assert call.headers["x-auth-token"] == "cm_unit"


def test_urls_that_are_not_codemagic_artifacts_pass_through(api):
    codemagic = with_api(api)
    links = [
        {"name": "app.apk", "url": "https://storage.example.com/app.apk"},
        {"name": "app2.apk", "url": "https://api.codemagic.io/artifacts/.eJwVwcmSQ/app2.apk"},
    ]
    build = codemagic.parse(signed(body_with(artifacts=links))).build
    for artifact in build.artifacts:
        assert codemagic.artifact_link(build, artifact, secrets()).url == artifact.url
    assert api.calls == []


def test_without_a_token_the_answer_says_what_to_set(api):
    codemagic = with_api(api, token=False)
    build = codemagic.parse(signed(payload(SAMPLE))).build
    with pytest.raises(UnprocessableBuild, match=r"set sources.codemagic.api.token"):
        codemagic.artifact_link(build, build.artifacts[0], secrets())
    assert api.calls == []


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            json_reply(401, {"error": "Invalid token"}),
            UpstreamError,
            "refused (401): Invalid token",
        ),
        (json_reply(404, {"error": "Not found"}), UpstreamError, "refused (404)"),
        (json_reply(500, {"error": "boom"}), Unavailable, "answered 500"),
        (Reply(status=200, body=b"{}", delay=2.0), Unavailable, "did not answer in 0.5s"),
        (json_reply(200, {"expiresAt": "soon"}), UpstreamError, "without a public URL"),
    ],
)
def test_api_failures_become_clear_errors(api, reply, error, message):
    api.fail("/artifacts/", reply)
    codemagic = with_api(api)
    build = codemagic.parse(signed(payload(SAMPLE))).build
    with pytest.raises(error) as caught:
        codemagic.artifact_link(build, build.artifacts[0], secrets())
    assert message in caught.value.message
    assert "Codemagic API" in caught.value.message
    assert "cm_unit" not in caught.value.message
