"""The `github` source: signatures, the three events and their ignored cases (pure), and its
API calls against a fake GitHub on loopback."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from relay.errors import BadRequest, Unauthorized, Unavailable, UnprocessableBuild, UpstreamError
from relay.plugins import parse_config
from relay.sandbox.fakes._http import Reply, json_reply
from relay.sandbox.fakes.github_api import FakeGitHubApi
from relay.secrets import Secrets
from relay.sources import Delivery, build_source
from relay.sources.github import GitHubSource, guess_event, read_payload
from tests.payloads import payload

SECRET = "test-github-secret"
SIGNATURES = {  # webhook-sources.md §10
    "github-workflow-run-completed.json": (
        "workflow_run",
        "sha256=1e2337f76798f8286ad7138769d8da281073cdb26c068ef6682fa89498dbedcc",
    ),
    "github-release-published.json": (
        "release",
        "sha256=517ca69bbafe10708c6559b5630f744bf46519182f67ced8b7687a3db351b153",
    ),
    "github-repository-dispatch.json": (
        "repository_dispatch",
        "sha256=57bd2bf1998524f4e5e653bec77e1693bd67b2175d34a1459593068b1d6780da",
    ),
}
RUN = "github-workflow-run-completed.json"
RELEASE = "github-release-published.json"
DISPATCH = "github-repository-dispatch.json"
SHA = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def source(extra: str = "", name: str = "github") -> GitHubSource:
    config = parse_config(f"sources:\n  {name}: {{type: github, secret: {{env: S}}{extra}}}\n")
    built = build_source(name, config.sources[name])
    assert isinstance(built, GitHubSource)
    return built


def delivery(body: bytes, event: str, **headers: str) -> Delivery:
    given = {"x-github-event": event, "x-github-delivery": GUID, **headers}
    return Delivery({k.lower(): v for k, v in given.items()}, body, 0.0)


def edited(name: str, change) -> bytes:
    data = json.loads(payload(name))
    change(data)
    return json.dumps(data).encode()


# signatures


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_shared_samples_verify_with_their_known_signatures(name):
    event, signature = SIGNATURES[name]
    body = payload(name)
    source().verify(delivery(body, event, **{"x-hub-signature-256": signature}), SECRET)
    assert source().sign(body, SECRET, 0, GUID) == {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": GUID,
        "X-Hub-Signature-256": signature,
    }


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=1e2337f76798f8286ad7138769d8da281073cdb2",
        "sha256=1e2337f76798f8286ad7138769d8da281073cdb26c068ef6682fa89498dbedc",
    ],
)
def test_bad_or_missing_signatures_are_refused(header):
    headers = {"x-hub-signature-256": header} if header is not None else {}
    with pytest.raises(Unauthorized) as caught:
        source().verify(delivery(payload(RUN), "workflow_run", **headers), SECRET)
    assert "1e2337" not in caught.value.message


def test_missing_signature_says_the_hook_needs_a_secret():
    with pytest.raises(Unauthorized, match="give the GitHub hook a Secret"):
        source().verify(delivery(payload(RUN), "workflow_run"), SECRET)


def test_form_encoded_delivery_is_verified_on_the_raw_body_and_read():
    body = urlencode({"payload": payload(RUN).decode()}).encode()
    signed = source().sign(body, SECRET, 0, GUID)
    assert signed["X-GitHub-Event"] == "workflow_run"
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-hub-signature-256": signed["X-Hub-Signature-256"],
    }
    form = delivery(body, "workflow_run", **headers)
    source().verify(form, SECRET)
    assert source().parse(form).build.commit == SHA
    json_signature = {"x-hub-signature-256": SIGNATURES[RUN][1]}
    with pytest.raises(Unauthorized):  # the JSON's signature does not cover the form body
        source().verify(delivery(body, "workflow_run", **json_signature), SECRET)


@pytest.mark.parametrize(
    "body", [b"payload=", b"payload=%7B&payload=%7D", b"payload=%5B%5D", b"a=b", b"payload=%ff"]
)
def test_malformed_form_bodies_are_bad_requests(body):
    with pytest.raises(BadRequest):
        read_payload(
            delivery(body, "release", **{"content-type": "application/x-www-form-urlencoded"})
        )


# the event key: signed content only


def test_the_event_key_is_read_from_the_signed_body_never_from_the_delivery_guid():
    def run_attempt(n):
        return lambda data: data["workflow_run"].update(run_attempt=n)

    keys = {
        (name, guid): source()
        .parse(Delivery({"x-github-event": event, "x-github-delivery": guid}, body, 0.0))
        .key
        for name, event, body in [
            ("release", "release", payload(RELEASE)),
            ("run", "workflow_run", payload(RUN)),
            ("re-run", "workflow_run", edited(RUN, run_attempt(2))),
            ("dispatch", "repository_dispatch", payload(DISPATCH)),
        ]
        for guid in (GUID, "0b5c9d1e-0000-4000-8000-000000000001")
    }
    assert keys[("release", GUID)] == "github:release:187654321:published"
    assert keys[("run", GUID)] == "github:workflow_run:12034987651:1:completed"
    assert keys[("re-run", GUID)] == "github:workflow_run:12034987651:2:completed"
    assert keys[("dispatch", GUID)].startswith("github:repository_dispatch:")
    assert len(set(keys.values())) == 4  # the GUID changes nothing


def test_a_dispatch_key_is_the_same_for_the_json_and_the_form_encoding():
    form = urlencode({"payload": payload(DISPATCH).decode()}).encode()
    as_form = delivery(
        form, "repository_dispatch", **{"content-type": "application/x-www-form-urlencoded"}
    )
    as_json = delivery(payload(DISPATCH), "repository_dispatch")
    assert source().parse(as_form).key == source().parse(as_json).key
    other = edited(DISPATCH, lambda data: data["client_payload"].update(build_id="another"))
    assert source().parse(delivery(other, "repository_dispatch")).key != source().parse(as_json).key


# workflow_run


def test_successful_workflow_run_is_a_build():
    event = source().parse(delivery(payload(RUN), "workflow_run"))
    assert event.key == "github:workflow_run:12034987651:1:completed"
    build = event.build
    assert build is not None
    assert (build.system, build.commit, build.branch, build.pr_number) == (
        "github-actions",
        SHA,
        "feature/coupon-rounding",
        412,
    )
    assert (build.workflow, build.run_id, build.build_number, build.repository) == (
        "Build Android preview",
        "12034987651",
        "873",
        "acme/shopper",
    )
    assert build.build_url == "https://github.com/acme/shopper/actions/runs/12034987651"
    assert build.platform == "android"  # the workflow's name says it
    assert build.artifacts == ()
    assert build.actor == "jdoe"


@pytest.mark.parametrize(
    ("conclusion", "action", "reason"),
    [
        ("failure", "completed", "workflow run concluded 'failure', not 'success'"),
        ("cancelled", "completed", "workflow run concluded 'cancelled', not 'success'"),
        ("timed_out", "completed", "workflow run concluded 'timed_out', not 'success'"),
        (None, "in_progress", "workflow run 'in_progress': only completed runs are acted on"),
        (None, "requested", "workflow run 'requested': only completed runs are acted on"),
    ],
)
def test_unfinished_and_unsuccessful_runs_are_ignored_with_the_reason(conclusion, action, reason):
    def change(data):
        data["action"] = action
        data["workflow_run"]["conclusion"] = conclusion

    event = source().parse(delivery(edited(RUN, change), "workflow_run"))
    assert (event.ignored, event.build) == (reason, None)


def test_fork_pull_requests_have_no_number_and_ambiguous_names_no_platform():
    def change(data):
        data["workflow_run"]["pull_requests"] = []
        data["workflow_run"]["name"] = "Build iOS and Android"
        data["workflow_run"]["path"] = ".github/workflows/mobile.yml"

    build = source().parse(delivery(edited(RUN, change), "workflow_run")).build
    assert (build.pr_number, build.platform) == (None, None)


# release


def test_published_release_of_a_private_repository():
    build = source().parse(delivery(payload(RELEASE), "release")).build
    assert build is not None
    assert (build.version, build.branch, build.commit) == ("v2.4.0-rc.1", "main", None)
    assert build.build_url == "https://github.com/acme/shopper/releases/tag/v2.4.0-rc.1"
    assert [(a.name, a.kind, a.url, a.ref) for a in build.artifacts] == [
        ("shopper-2.4.0-10190-release.apk", "apk", None, "release-asset:212345678"),
        ("Shopper-2.4.0-190-adhoc.ipa", "ipa", None, "release-asset:212345679"),
    ]
    assert build.platform is None  # an .apk and an .ipa: a route picks one with `asset`


def test_public_release_assets_are_their_download_urls():
    def change(data):
        data["repository"]["private"] = False
        data["release"]["target_commitish"] = SHA
        data["release"]["assets"] = data["release"]["assets"][:1]

    build = source().parse(delivery(edited(RELEASE, change), "release")).build
    assert build.artifacts[0].url == (
        "https://github.com/acme/shopper/releases/download/v2.4.0-rc.1/"
        "shopper-2.4.0-10190-release.apk"
    )
    assert (build.commit, build.branch, build.platform) == (SHA, None, "android")


@pytest.mark.parametrize("action", ["created", "released", "prereleased", "edited", "deleted"])
def test_other_release_actions_are_ignored(action):
    body = edited(RELEASE, lambda data: data.update(action=action))
    event = source().parse(delivery(body, "release"))
    assert event.ignored == f"release {action!r}: only published releases are acted on"


def test_assets_still_uploading_are_left_out():
    body = edited(RELEASE, lambda data: data["release"]["assets"][0].update(state="starter"))
    build = source().parse(delivery(body, "release")).build
    assert [a.name for a in build.artifacts] == ["Shopper-2.4.0-190-adhoc.ipa"]


# repository_dispatch, ping, other events


def test_dispatch_client_payload_is_read_as_a_generic_body():
    event = source().parse(delivery(payload(DISPATCH), "repository_dispatch"))
    build = event.build
    assert (build.platform, build.app, build.version, build.build_number) == (
        "android",
        "com.acme.shopper",
        "2.4.0",
        "10187",
    )
    assert (build.commit, build.branch, build.pr_number) == (SHA, "feature/coupon-rounding", 412)
    assert build.repository == "acme/shopper"  # from the event when the payload has none
    assert build.artifacts[0].url == "https://expo.dev/artifacts/eas/h7TnQw2sXb9pLmVc4aRy1k.apk"
    assert (build.system, build.actor) == ("github", "ci-bot")


def test_dispatch_types_and_failed_dispatched_builds_are_ignored():
    only_builds = source(", dispatch_types: ['build-*']")
    event = only_builds.parse(delivery(payload(DISPATCH), "repository_dispatch"))
    assert event.ignored == (
        "repository_dispatch type 'mobile-build-finished' is not in sources.github.dispatch_types"
    )
    failed = edited(DISPATCH, lambda data: data["client_payload"].update(status="failed"))
    event = source().parse(delivery(failed, "repository_dispatch"))
    assert event.ignored == "build status 'failed' is not a success"


def test_ping_and_unhandled_events_are_ignored():
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    assert guess_event(ping) == "ping"
    assert "secret matches" in source().parse(delivery(ping, "ping")).ignored
    event = source().parse(delivery(b"{}", "push"))
    assert event.ignored.startswith("GitHub event 'push' is not acted on")


@pytest.mark.parametrize(
    ("body", "event", "headers"),
    [
        (b"not json", "workflow_run", {}),
        (b"[]", "release", {}),
        (b"{}", "workflow_run", {}),
        (b'{"action": "published", "release": {"tag_name": "v1"}}', "release", {}),
        (b'{"action": "x", "client_payload": []}', "repository_dispatch", {}),
        (b"{}", "release", {"x-github-delivery": ""}),
    ],
)
def test_malformed_payloads_are_bad_requests(body, event, headers):
    with pytest.raises(BadRequest):
        source().parse(delivery(body, event, **headers))


# settings


def test_settings_defaults_and_what_a_missing_secret_says():
    settings = source().settings
    assert (settings.api.url, settings.api.token, settings.workflow_artifacts) == (
        "https://api.github.com",
        None,
        False,
    )
    with pytest.raises(Exception, match=r"sources.github.secret: Field required: every source"):
        parse_config("sources:\n  github: {type: github}\n")
    with pytest.raises(Exception, match=r"workflow_artifacts: needs api.token"):
        source(", workflow_artifacts: true")


# the API, on loopback


@pytest.fixture(scope="module")
def github_api():
    with FakeGitHubApi(token="ghp_unit") as server:
        yield server


@pytest.fixture
def api(github_api):
    github_api.reset()
    return github_api


def secrets() -> Secrets:
    return Secrets(None, project=None, ttl_seconds=0, environ={"GH_TOKEN": "ghp_unit"})  # type: ignore[arg-type]


def with_api(api, extra: str = "", token: bool = True) -> GitHubSource:
    token_yaml = ", token: {env: GH_TOKEN}" if token else ""
    return source(f", api: {{url: '{api.url}', timeout: 0.5{token_yaml}}}{extra}")


def test_release_tag_is_resolved_to_its_commit_with_a_token(api):
    api.add_commit("acme/shopper", "v2.4.0-rc.1", "f" * 40)
    github = with_api(api)
    event = github.enrich(github.parse(delivery(payload(RELEASE), "release")), secrets())
    assert event.build.commit == "f" * 40
    (call,) = api.calls
    assert call.headers["authorization"] == "Bearer ghp_unit"
    assert call.headers["x-github-api-version"] == "2022-11-28"


def test_without_a_token_nothing_is_asked(api):
    github = with_api(api, token=False)
    event = github.parse(delivery(payload(RELEASE), "release"))
    assert github.enrich(event, secrets()) is event
    run = github.parse(delivery(payload(RUN), "workflow_run"))
    assert github.enrich(run, secrets()) is run
    assert api.calls == []


def test_private_release_asset_goes_to_revyl_as_the_signed_url_github_redirects_to(api):
    github = with_api(api)
    build = github.parse(delivery(payload(RELEASE), "release")).build
    link = github.artifact_link(build, build.artifacts[0], secrets())
    assert link.url == api.asset_url(212345678)
    assert link.headers is None  # the token stays in the relay
    (call,) = api.calls
    assert call.path == "/repos/acme/shopper/releases/assets/212345678"
    assert call.headers["accept"] == "application/octet-stream"
    assert call.headers["authorization"] == "Bearer ghp_unit"


def test_private_release_asset_github_streams_goes_to_revyl_with_the_token_as_headers(api):
    api.stream_release_assets = True
    github = with_api(api)
    build = github.parse(delivery(payload(RELEASE), "release")).build
    link = github.artifact_link(build, build.artifacts[0], secrets())
    assert link.url == f"{api.url}/repos/acme/shopper/releases/assets/212345678"
    assert link.headers == {
        "Authorization": "Bearer ghp_unit",
        "Accept": "application/octet-stream",
    }
    with pytest.raises(UnprocessableBuild, match=r"set sources.github.api.token"):
        with_api(api, token=False).artifact_link(build, build.artifacts[0], secrets())


def test_run_artifacts_are_listed_and_minted_into_a_short_lived_url(api):
    api.add_run_artifact("acme/shopper", "12034987651", "app-debug")
    kept = api.add_run_artifact("acme/shopper", "12034987651", "app-release.apk")
    api.add_run_artifact("acme/shopper", "12034987651", "old", expired=True)
    github = with_api(api, ", workflow_artifacts: true")
    build = github.enrich(github.parse(delivery(payload(RUN), "workflow_run")), secrets()).build
    assert [(a.name, a.kind) for a in build.artifacts] == [
        ("app-debug", "zip"),
        ("app-release.apk", "apk"),
    ]
    link = github.artifact_link(build, build.artifacts[1], secrets())
    assert link.url == api.download_url(kept["id"])
    assert link.headers is None  # the token stays in the relay
    assert api.calls[0].query == {"per_page": "100"}


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (json_reply(401, {"message": "Bad credentials"}), UpstreamError, "refused (401)"),
        (json_reply(404, {"message": "Not Found"}), UpstreamError, "refused (404)"),
        (json_reply(500, {"message": "oops"}), Unavailable, "answered 500"),
        (Reply(status=200, body=b"{}", delay=2.0), Unavailable, "did not answer in 0.5s"),
    ],
)
def test_api_failures_become_clear_errors(api, reply, error, message):
    api.fail("/repos/", reply)
    github = with_api(api, ", workflow_artifacts: true")
    run = github.parse(delivery(payload(RUN), "workflow_run"))
    with pytest.raises(error) as caught:
        github.enrich(run, secrets())
    assert message in caught.value.message
    assert "GitHub API" in caught.value.message
    assert "ghp_unit" not in caught.value.message


def test_an_expired_artifact_is_a_refusal_naming_github(api):
    item = api.add_run_artifact("acme/shopper", "12034987651", "app.apk", expired=True)
    item["expired"] = False  # listed as live, expired by the time it is fetched
    github = with_api(api, ", workflow_artifacts: true")
    build = github.enrich(github.parse(delivery(payload(RUN), "workflow_run")), secrets()).build
    item["expired"] = True
    with pytest.raises(UpstreamError, match=r"refused \(410\): Artifact has expired"):
        github.artifact_link(build, build.artifacts[0], secrets())


@pytest.mark.parametrize(
    "listed", [{"artifacts": 5}, {"artifacts": "x"}, [1, 2], {"artifacts": [7]}]
)
def test_an_odd_artifact_list_is_no_artifacts(api, listed):
    api.fail("/artifacts", json_reply(200, listed))
    github = with_api(api, ", workflow_artifacts: true")
    build = github.enrich(github.parse(delivery(payload(RUN), "workflow_run")), secrets()).build
    assert build.artifacts == ()


def test_the_api_client_never_calls_a_whole_url(api):
    github = with_api(api)
    for path in ("https://elsewhere.example/x", "//elsewhere.example/x", "@elsewhere.example/"):
        with pytest.raises(UpstreamError, match="refusing to call the GitHub API"):
            github.api.request_json("GET", path)
    assert api.calls == []
