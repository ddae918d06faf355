"""Config validation and routing: pure functions over the config and a Build."""

import pytest

from relay.config import token_is_set
from relay.errors import ConfigError
from relay.models import Artifact, Build
from relay.plugins import parse_config
from relay.routing import match_routes, pick_artifact, plan_event, render

APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
T1, T2, W1 = (
    "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
    "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7",
    "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928",
)

BASE = f"""
revyl: {{token: {{env: REVYL_API_KEY}}}}
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
  ci: {{type: generic, secret: {{env: CI_SECRET}}}}
routes:
  - name: ios-smoke
    when: {{source: eas, platform: ios, profile: preview, branch: "release/*"}}
    build: {{ingest: {{app_id: {APP}}}, version_label: "{{version}} ({{build_number}})"}}
    tests: [{T1}, {T2}]
    workflows: [{W1}]
  - name: any-ios
    when: {{platform: ios}}
    tests: [{T1}]
"""


def build(**fields) -> Build:
    defaults = dict(
        source="eas",
        system="expo-eas",
        platform="ios",
        profile="preview",
        branch="release/2.4",
        version="2.4.0",
        build_number="187",
        artifacts=(Artifact(name="app.tar.gz", url="https://x/app.tar.gz", kind="tar.gz"),),
    )
    return Build(**{**defaults, **fields})


def test_the_issue_example_config_parses():
    config = parse_config(BASE)
    assert config.sources["eas"].type == "eas"
    assert config.sources["ci"].type == "generic"
    assert config.revyl.api_url == "https://backend.revyl.ai"
    assert config.revyl.concurrency == 8
    assert config.routes[0].build.mode == "ingest"
    assert config.routes[1].build.mode == "attached"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("tests: [{T1}, {T2}]", "tests: [{T1}, smoke]"), "routes.0.tests.1: not a UUID: 'smoke'"),
        (("ci: {type: generic", "ci: {type: jenkins"), "unknown source type 'jenkins'"),
        (("{secret: {secret: eas-webhook-secret}}", "{}"), "sources.eas.secret: Field required"),
        (("{env: CI_SECRET}", "{env: A, secret: b}"), "give exactly one of"),
        (
            ("profile: preview,", "profil: preview,"),
            "routes.0.when: unknown key `profil`: did you mean `profile`? (valid keys: source, "
            "platform, app, profile, branch, workflow, repository, version)",
        ),
        (('"{version} ({build_number})"', '"{version}-{bogus}"'), "unknown fields ['bogus']"),
        (("source: eas, platform", "source: ea, platform"), "when.source 'ea' names no source"),
        (("name: any-ios", "name: ios-smoke"), "route names must be unique"),
        (
            ("build: {ingest:", "build: {lookup: {app_id: " + APP + "}, ingest:"),
            "give `ingest` or `lookup`",
        ),
    ],
)
def test_bad_configs_name_the_key_and_the_problem(change, message):
    old, new = (part.replace("{T1}", T1).replace("{T2}", T2) for part in change)
    assert old in BASE
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE.replace(old, new), origin="relay.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("relay.yaml: ")


@pytest.mark.parametrize("text", ["", "- a list", "sources: [", "routes: []"])
def test_structurally_wrong_files_fail_fast(text):
    with pytest.raises(ConfigError):
        parse_config(text)


def test_dry_run_when_the_token_variable_is_unset():
    config = parse_config(BASE)
    assert not token_is_set(config, {})
    assert token_is_set(config, {"REVYL_API_KEY": "rev_x"})
    assert not token_is_set(
        parse_config(BASE.replace("revyl: {token: {env: REVYL_API_KEY}}", "")), {}
    )


def test_every_given_field_must_match_and_globs_apply():
    routes = parse_config(BASE).routes
    assert [r.name for r in match_routes(routes, build())] == ["ios-smoke", "any-ios"]
    assert [r.name for r in match_routes(routes, build(branch="main"))] == ["any-ios"]
    assert [r.name for r in match_routes(routes, build(branch=None))] == ["any-ios"]
    assert match_routes(routes, build(platform="android")) == []


def test_plan_renders_the_label_and_picks_the_artifact():
    plans = plan_event(parse_config(BASE).routes, build())
    smoke = plans[0]
    assert smoke.version_label == "2.4.0 (187)"
    assert smoke.artifact
    assert smoke.artifact.name == "app.tar.gz"
    assert [t.key for t in smoke.targets] == [
        f"ios-smoke/test/{T1}",
        f"ios-smoke/test/{T2}",
        f"ios-smoke/workflow/{W1}",
    ]
    assert plans[1].mode == "attached"
    assert plans[1].version_label is None


def test_plan_reports_what_the_build_lacks():
    plan = plan_event(parse_config(BASE).routes, build(build_number=None))[0]
    assert (
        plan.problem == "version_label '{version} ({build_number})': the build has no build_number"
    )
    plan = plan_event(parse_config(BASE).routes, build(artifacts=()))[0]
    assert plan.problem == "the build has no artifact to ingest"


def test_explicit_test_ids_run_once_under_the_first_route():
    plans = plan_event(parse_config(BASE).routes, build(test_ids=(T2,)))
    assert len(plans) == 1
    assert [t.key for t in plans[0].targets] == [f"ios-smoke/test/{T2}"]


def test_pick_artifact_prefers_the_platform_and_honours_the_glob():
    artifacts = (
        Artifact(name="logs.txt", url="u1"),
        Artifact(name="app.apk", url="u2", kind="apk"),
        Artifact(name="app-sim.zip", url="u3", kind="zip"),
    )
    assert pick_artifact(build(platform="android", artifacts=artifacts), None).name == "app.apk"
    assert pick_artifact(build(platform="ios", artifacts=artifacts), None).name == "app-sim.zip"
    assert pick_artifact(build(artifacts=artifacts), "*.txt").name == "logs.txt"
    assert pick_artifact(build(artifacts=artifacts), "*.ipa") is None


def test_render_fills_fields():
    assert render("{app}@{version}+{build_number}", build(app="com.a")) == "com.a@2.4.0+187"


def test_printing_the_routes_does_not_change_what_they_match():
    """`check` prints each route's `when:`; the mapping it reads is the one routing uses."""
    from relay.cli.check import routes_table

    config = parse_config(BASE)
    ci_build = build(source="ci", system="generic")
    before = [r.name for r in match_routes(config.routes, ci_build)]
    routes_table(config)
    assert [r.name for r in match_routes(config.routes, ci_build)] == before == ["any-ios"]
    with pytest.raises(TypeError):
        config.routes[0].when.given["source"] = "*"  # type: ignore[index]


def test_a_test_named_twice_in_a_route_or_a_build_is_one_target():
    text = BASE.replace(f"tests: [{T1}, {T2}]", f"tests: [{T1}, {T2.upper()}, {T1}, {T2}]")
    (plan, _) = plan_event(parse_config(text).routes, build())
    assert [t.test_id for t in plan.targets if t.test_id] == [T1, T2]
    assert [t.workflow_id for t in plan.targets if t.workflow_id] == [W1]
    (plan,) = plan_event(parse_config(BASE).routes, build(test_ids=(T2, T1, T2)))
    assert [t.test_id for t in plan.targets] == [T2, T1]


DEFAULT_LABEL = f"""
sources: {{eas: {{secret: {{env: X}}}}}}
routes:
  - {{name: r, build: {{ingest: {{app_id: {APP}}}}}, tests: [{T1}]}}
"""


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({}, "2.4.0 (187)"),
        ({"build_number": None}, "2.4.0"),  # a GitHub release: a tag, no build number
        ({"version": None}, "187"),  # a Bitrise build read without its API
    ],
)
def test_the_default_label_is_built_from_what_the_build_carries(fields, label):
    (plan,) = plan_event(parse_config(DEFAULT_LABEL).routes, build(**fields))
    assert (plan.problem, plan.version_label) == (None, label)


def test_the_default_label_of_a_build_with_neither_field_is_a_problem_that_says_what_to_set():
    (plan,) = plan_event(parse_config(DEFAULT_LABEL).routes, build(version=None, build_number=None))
    assert plan.problem == (
        "the build has no version and no build_number, so it has no default label: "
        "set the route's build.version_label to a template of fields it has"
    )


def test_a_link_problem_the_source_knows_fails_the_plan_before_any_io():
    def link_problem(build: Build, artifact: Artifact) -> str | None:
        return f"{artifact.name} needs a token"

    (plan,) = plan_event(parse_config(DEFAULT_LABEL).routes, build(), (), link_problem)
    assert plan.problem == "app.tar.gz needs a token"


def test_the_lease_must_outlast_a_whole_revyl_call_and_the_record_of_its_start():
    """Defaults: connect 5 + request 30 (one call, as a whole) + 5 s to record the start."""
    sources = "sources: {eas: {secret: {env: X}}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(sources + "dedup: {lease_seconds: 40}\n")
    assert "request_timeout + 5 s to record a start (40)" in str(caught.value)
    config = parse_config(sources + "dedup: {lease_seconds: 41}\n")
    assert config.lease_margin == 40


def test_a_blank_env_signing_secret_stops_the_relay_at_start_up():
    from relay.config import missing_environment

    config = parse_config("sources: {eas: {secret: {env: HOOK}}}\n")
    assert missing_environment(config, {"HOOK": "s3cr3t-value"}) == []
    for blank in ("", "  ", "\n"):
        assert missing_environment(config, {"HOOK": blank}) == [
            "sources.eas.secret: set the environment variable HOOK"
        ]
