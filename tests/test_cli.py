"""`python -m relay`: check, simulate and send, run as a user runs them.

The commands run in-process through `relay.cli.main` (argv in, exit code and output out);
`send` posts to a relay started as production runs it, and the Secret Manager reads go to the
fake Secret Manager on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli import main
from relay.cli.deploy_info import info_lines, secret_fields
from relay.config import SecretRef
from relay.errors import ConfigError
from relay.plugins import load_config
from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply, json_reply
from tests.conftest import PROJECT
from tests.payloads import EAS_SECRET, GENERIC_SECRET, PAYLOADS

REPO = Path(__file__).resolve().parent.parent
BUNDLED = str(REPO / "relay.yaml")
IOS = str(PAYLOADS / "eas-build-finished-ios.json")
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return str(path)


# --- the program -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["check"], ["simulate"], ["send"]])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: python -m relay" in capsys.readouterr().out


def test_the_tools_start_without_the_function_or_http_libraries():
    """`relay.app` loads the config at import, and requests is only for `send`."""
    probe = (
        "import sys\nfrom relay.cli import main\n"
        f"code = main(['check', '--config', {BUNDLED!r}])\n"
        "print(code, 'relay.app' in sys.modules, 'requests' in sys.modules)"
    )
    secrets = {"EAS_WEBHOOK_SECRET": "e", "CI_WEBHOOK_SECRET": "c"}  # as examples/local.env
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, **secrets},
    )
    assert done.stdout.splitlines()[-1] == "0 False False"


def test_a_usage_mistake_is_one_line_and_no_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "check", "--config", str(tmp_path / "missing.yaml"))
    assert code == 1
    assert (
        err == f"relay: cannot read config {tmp_path / 'missing.yaml'}: No such file or directory\n"
    )


# --- check -----------------------------------------------------------------------------------


def local_env(monkeypatch) -> None:
    """The documented local set-up: `set -a; . examples/local.env; set +a`, no Revyl token."""
    for line in (REPO / "examples" / "local.env").read_text().splitlines():
        if line and not line.startswith("#"):
            monkeypatch.setenv(*line.split("=", 1))
    monkeypatch.delenv("REVYL_API_KEY", raising=False)


def test_check_prints_the_sources_and_routes_of_the_bundled_config(capsys, monkeypatch):
    local_env(monkeypatch)
    monkeypatch.chdir(REPO)
    code, out, _ = run(capsys, "check", "--config", BUNDLED)
    assert code == 0
    assert out.startswith("relay.yaml: valid (2 sources, 3 routes)\n")
    assert "eas     eas      secret: env EAS_WEBHOOK_SECRET  /eas" in out
    assert (
        "ios-smoke      eas     platform=ios profile=preview  ingest app 5b0d3c1e"
        "                0f8f6c1a  7c6b5a49"
    ) in out
    assert "label {version}-{build_number}" in out
    assert "label (default)\n" in out
    assert "  eas: {version} ({build_number})" in out
    assert "token from env REVYL_API_KEY (not set in this shell: dry-run here)" in out
    assert "warn:" not in out


def test_check_names_the_key_and_the_problem_of_a_bad_config(capsys, tmp_path):
    config = write(
        tmp_path,
        "sources: {eas: {secret: {env: X}}}\nroutes: [{name: r, tests: [smoke]}]\n",
    )
    code, out, err = run(capsys, "check", "--config", config)
    assert (code, out) == (1, "")
    assert err == f"relay: {config}: routes.0.tests.0: not a UUID: 'smoke'\n"


def test_check_notes_a_source_no_route_takes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("X", "x")
    monkeypatch.setenv("Y", "y")
    config = write(
        tmp_path,
        "sources: {eas: {secret: {env: X}}, ci: {type: generic, secret: {env: Y}}}\n"
        f"routes: [{{name: r, when: {{source: eas}}, tests: [{TEST}]}}]\n",
    )
    code, out, _ = run(capsys, "check", "--config", config)
    assert code == 0
    assert "note:   no route takes builds from source 'ci': they are ignored" in out


def test_check_secrets_reads_every_secret_and_prints_no_value(
    capsys, tmp_path, monkeypatch, fake_secret_manager
):
    monkeypatch.setenv("RELAY_SECRET_MANAGER_ENDPOINT", fake_secret_manager.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("EAS_WEBHOOK_SECRET", EAS_SECRET)
    config = write(
        tmp_path,
        "revyl: {token: {secret: revyl-api-key}}\n"
        "sources:\n"
        "  eas: {secret: {env: EAS_WEBHOOK_SECRET}}\n"
        "  ci: {type: generic, secret: {secret: ci-webhook-secret}}\n"
        f"routes: [{{name: r, tests: [{TEST}]}}]\n",
    )
    code, out, _ = run(capsys, "check", "--secrets", "--config", config)
    assert code == 0
    assert "env EAS_WEBHOOK_SECRET    sources.eas.secret  readable" in out
    assert "secret ci-webhook-secret  sources.ci.secret   readable" in out
    assert "secret revyl-api-key      revyl.token         readable" in out
    assert EAS_SECRET not in out
    assert GENERIC_SECRET not in out

    monkeypatch.delenv("EAS_WEBHOOK_SECRET")
    fake_secret_manager.delete("ci-webhook-secret", project=PROJECT)
    code, out, err = run(capsys, "check", "--secrets", "--config", config)
    assert code == 1
    assert "environment variable EAS_WEBHOOK_SECRET is not set" in out
    assert "secret 'ci-webhook-secret' could not be read (NotFound)" in out
    assert err == ""


def test_check_refuses_what_the_relay_refuses_to_start_with(capsys, tmp_path, monkeypatch):
    """check runs the function's own start-up checks: the same problems, exit 1."""
    from relay.wiring import build_relay

    monkeypatch.delenv("UNSET_SECRET", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    config = write(
        tmp_path,
        "sources: {eas: {secret: {env: UNSET_SECRET}}, ci: {type: generic, secret: {secret: s}}}\n"
        f"routes: [{{name: r, tests: [{TEST}]}}]\n",
    )
    with pytest.raises(ConfigError) as refused:
        build_relay(load_config(Path(config)), {})
    code, out, err = run(capsys, "check", "--config", config)
    assert (code, err) == (1, "")
    assert out.startswith(f"{config}: the relay would refuse to start here (2 sources, 1 route)")
    problems = str(refused.value).splitlines()[1:]
    assert problems == [
        "sources.eas.secret: set the environment variable UNSET_SECRET",
        "secrets ['s'] are Secret Manager short names: set GOOGLE_CLOUD_PROJECT",
    ]
    assert "start:  the relay refuses to start with this environment:\n" in out
    assert all(f"        {problem}" in out for problem in problems)


def test_check_secrets_in_the_local_set_up_is_green_without_a_revyl_token(capsys, monkeypatch):
    """An unset `{env: REVYL_API_KEY}` is how the relay runs in dry-run, not an error."""
    local_env(monkeypatch)
    code, out, _ = run(capsys, "check", "--secrets", "--config", BUNDLED)
    assert code == 0
    assert (
        "env REVYL_API_KEY       revyl.token         not set: the relay runs in dry-run "
        "(export REVYL_API_KEY to start runs)"
    ) in out


def test_check_says_what_a_slack_source_does(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("S", "s")
    config = write(
        tmp_path,
        "sources: {slack: {secret: {env: S}, team_id: T1}}\n"
        f"routes: [{{name: smoke, tests: [{TEST}]}}]\n",
    )
    code, out, _ = run(capsys, "check", "--config", config)
    assert code == 0
    assert "note:   source 'slack' runs routes by name (/revyl run <route>): no `when:`" in out
    assert "ignored" not in out


def check_warnings(capsys, tmp_path, monkeypatch, sources: str, routes: str) -> list[str]:
    monkeypatch.setenv("S", "s")
    config = write(tmp_path, f"sources: {sources}\nroutes:\n{routes}")
    code, out, _ = run(capsys, "check", "--config", config)
    assert code == 0  # warnings do not fail the check: the relay starts
    return [line.removeprefix("warn:   ") for line in out.splitlines() if line.startswith("warn:")]


def test_check_warns_of_a_when_field_the_source_never_provides(capsys, tmp_path, monkeypatch):
    found = check_warnings(
        capsys,
        tmp_path,
        monkeypatch,
        "{eas: {secret: {env: S}}, bitrise: {secret: {env: S}}}",
        f"  - {{name: eas-release, when: {{source: eas, branch: 'release/*'}}, tests: [{TEST}]}}\n"
        f"  - {{name: by-app, when: {{source: 'b*', app: com.acme}}, tests: [{TEST}]}}\n"
        f"  - {{name: any-repo, when: {{repository: acme/app}}, tests: [{TEST}]}}\n"
        f"  - {{name: fine, when: {{source: eas, profile: preview}}, tests: [{TEST}]}}\n",
    )
    assert found == [
        "route 'eas-release': when.branch: source 'eas' (eas) has branch only sometimes: EAS "
        "documents no branch in its webhook: the relay reads a top-level `gitRef` only when a "
        "delivery has one",
        "route 'by-app': when.app: source 'bitrise' (bitrise) never provides app: the route "
        "never matches",
        "route 'any-repo': when.repository: no source provides repository: the route never matches",
    ]


def test_check_shows_and_warns_of_the_label_per_source(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("S", "s")
    config = write(
        tmp_path,
        "sources: {gh: {type: github, secret: {env: S}}, asc: {type: app-store-connect, "
        "secret: {env: S}}, bitrise: {secret: {env: S}}}\n"
        "routes:\n"
        f"  - {{name: by-default, build: {{lookup: {{app_id: {APP}}}}}, tests: [{TEST}]}}\n"
        f"  - {{name: bitrise-label, when: {{source: bitrise}}, build: {{lookup: {{app_id: {APP}}},"
        f" version_label: '{{version}} ({{build_number}})'}}, tests: [{TEST}]}}\n",
    )
    code, out, _ = run(capsys, "check", "--config", config)
    assert code == 0
    assert "  gh: {version} ({build_number}) or the one it has" in out
    assert "  asc: none (no version, no build_number)" in out
    assert "  bitrise: {build_number}" in out
    assert (
        "warn:   route 'by-default': build.version_label: source 'asc' (app-store-connect) "
        "provides no version and no build_number, so there is no default label: set "
        "version_label to fields it has"
    ) in out
    assert (
        "warn:   route 'bitrise-label': build.version_label '{version} ({build_number})': "
        "source 'bitrise' (bitrise) never provides version: each of its builds would fail 422"
    ) in out


def test_check_warns_of_an_ios_device_build_to_ingest(capsys, tmp_path, monkeypatch):
    found = check_warnings(
        capsys,
        tmp_path,
        monkeypatch,
        "{gh: {type: github, secret: {env: S}}}",
        f"  - {{name: ios, build: {{ingest: {{app_id: {APP}}}, asset: '*-adhoc.IPA'}}, "
        f"tests: [{TEST}]}}\n",
    )
    assert found == [
        "route 'ios': asset '*-adhoc.IPA' picks an iOS device build (.ipa): Revyl runs iOS "
        "tests on simulators, which cannot install one; pick a simulator build (.app, .tar.gz "
        "or .zip)"
    ]


def test_check_secrets_says_an_empty_secret_is_empty(
    capsys, tmp_path, monkeypatch, fake_secret_manager
):
    """An empty signing secret would let anyone sign: the check fails and says so."""
    monkeypatch.setenv("RELAY_SECRET_MANAGER_ENDPOINT", fake_secret_manager.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("EAS_WEBHOOK_SECRET", "   ")
    fake_secret_manager.set("ci-webhook-secret", "\n", project=PROJECT)
    config = write(
        tmp_path,
        "sources:\n"
        "  eas: {secret: {env: EAS_WEBHOOK_SECRET}}\n"
        "  ci: {type: generic, secret: {secret: ci-webhook-secret}}\n"
        f"routes: [{{name: r, tests: [{TEST}]}}]\n",
    )
    code, out, _ = run(capsys, "check", "--secrets", "--config", config)
    assert code == 1
    assert "environment variable EAS_WEBHOOK_SECRET is empty" in out
    assert "secret 'ci-webhook-secret' is empty" in out


# --- simulate --------------------------------------------------------------------------------


def test_simulate_shows_the_build_the_decision_and_every_revyl_call(capsys, monkeypatch):
    monkeypatch.setenv("REVYL_API_KEY", "rev_not_read")  # the token is set: no dry-run
    code, out, _ = run(capsys, "simulate", "eas", IOS, "--config", BUNDLED)
    assert code == 0
    assert "source    eas (type eas); signature not checked" in out
    assert "          version          2.4.0\n" in out
    assert (
        "decision  triggered (HTTP 200)\n          1 route matched: 2 tests and 1 workflow" in out
    )
    assert f"  1. POST /api/v1/apps/{APP}/builds/from-url" in out
    assert out.count("POST /api/v1/execution/api/execute_test_id_async") == 2
    assert out.count("Authorization: Bearer ***") == 4
    assert "android-smoke: platform is 'ios' (route wants 'android')" in out


def test_simulate_json_is_the_same_report_as_data(capsys, monkeypatch):
    monkeypatch.setenv("REVYL_API_KEY", "rev_not_read")
    code, out, _ = run(capsys, "simulate", "eas", IOS, "--config", BUNDLED, "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["decision"], report["status"]) == ("triggered", 200)
    assert report["build"]["commit"] == "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"
    (plan,) = report["routes"]
    assert [c["path"].rsplit("/", 1)[-1] for c in plan["calls"]] == [
        "from-url",
        "execute_test_id_async",
        "execute_test_id_async",
        "execute_workflow_id_async",
    ]
    assert plan["calls"][1]["body"]["build_version_id"] == "<build_version_id from ingest>"
    assert set(report["not_matched"]) == {"android-smoke", "ci-builds"}


def test_simulate_answers_dry_run_as_the_relay_does_when_the_token_is_unset(capsys, monkeypatch):
    monkeypatch.delenv("REVYL_API_KEY", raising=False)
    code, out, _ = run(capsys, "simulate", "eas", IOS, "--config", BUNDLED)
    assert code == 0
    assert (
        "decision  dry_run (HTTP 200)\n"
        "          the Revyl token's variable REVYL_API_KEY is not set: nothing was started\n"
        "note      revyl.token is env REVYL_API_KEY, not set in this shell: "
        "a relay run here starts nothing\n"
        "if token  triggered (HTTP 200)\n"
        "          1 route matched: 2 tests and 1 workflow would start\n"
    ) in out
    assert out.count("POST /api/v1/execution/api/execute_test_id_async") == 2


def test_simulate_decides_with_the_pipelines_own_answer(capsys, monkeypatch, tmp_path):
    """A route the payload cannot run fails as the relay fails it: 422, the same payload
    cannot succeed on a redelivery (the status comes from the pipeline, not a copy)."""
    monkeypatch.setenv("REVYL_API_KEY", "rev_not_read")
    config = write(
        tmp_path,
        "revyl: {token: {env: REVYL_API_KEY}}\n"
        "sources: {eas: {secret: {env: X}}}\n"
        f"routes: [{{name: r, build: {{ingest: {{app_id: {APP}}}, asset: '*.apk'}}, "
        f"tests: [{TEST}]}}]\n",
    )
    report = json.loads(run(capsys, "simulate", "eas", IOS, "--config", config, "--json")[1])
    assert (report["decision"], report["status"]) == ("failed", 422)
    assert report["reason"] == "r: the build has no artifact matching '*.apk'"
    assert "with_token" not in report


def test_simulate_ignored_and_headers_from_the_command_line(capsys):
    errored = str(PAYLOADS / "eas-build-errored.json")
    code, out, _ = run(capsys, "simulate", "eas", errored, "--config", BUNDLED)
    assert code == 5  # answered 200, and nothing starts
    assert out.endswith("decision  ignored (HTTP 200)\n          the build errored\n")

    sample = str(PAYLOADS / "standard-webhooks-build-finished.json")
    argv = ["simulate", "ci", sample, "--config", BUNDLED, "--json", "-H", "webhook-id: msg_42"]
    report = json.loads(run(capsys, *argv)[1])
    assert report["event"] == "ci:msg_42"
    assert report["routes"][0]["calls"][0]["params"]["search"] == "2.4.0-187"


def test_simulate_says_what_the_relay_would_refuse(capsys, tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"id": "x"}')
    code, out, err = run(capsys, "simulate", "eas", str(body), "--config", BUNDLED)
    assert (code, out) == (3, "")  # a predicted 4xx
    assert (
        err == "relay: the relay would answer 400 rejected: EAS payload needs `id` and `status`\n"
    )
    code, _, err = run(capsys, "simulate", "bitrise", str(body), "--config", BUNDLED)
    assert code == 1  # a usage mistake
    assert err == "relay: no source named 'bitrise' in the config (sources: ci, eas)\n"


RELEASE = str(PAYLOADS / "github-release-published.json")  # a private repository's release


def github_config(tmp_path: Path, api: str = "", asset: str = "*.apk", extra: str = "") -> str:
    return write(
        tmp_path,
        "revyl: {token: {env: REVYL_API_KEY}}\n"
        f"sources: {{gh: {{type: github, secret: {{env: X}}{api}}}}}\n"
        f"routes:\n  - {{name: r, build: {{ingest: {{app_id: {APP}}}, asset: '{asset}'}}, "
        f"tests: [{TEST}]}}\n{extra}",
    )


@pytest.mark.parametrize("token", ["rev_not_read", None])
def test_simulate_exits_3_when_it_predicts_a_4xx(capsys, monkeypatch, tmp_path, token):
    """With or without a token in this shell: the prediction is for a relay with one."""
    if token:
        monkeypatch.setenv("REVYL_API_KEY", token)
    else:
        monkeypatch.delenv("REVYL_API_KEY", raising=False)
    config = github_config(tmp_path)
    code, out, _ = run(capsys, "simulate", "gh", RELEASE, "--config", config, "--json")
    report = json.loads(out)
    predicted = report.get("with_token", report)
    assert (code, predicted["status"], predicted["decision"]) == (3, 422, "failed")
    assert "set sources.gh.api.token" in predicted["reason"]
    if token is None:  # the dry-run answer itself fails the route too
        assert (report["status"], report["decision"]) == (422, "failed")


def test_simulate_exits_4_when_it_predicts_a_5xx(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("REVYL_API_KEY", "rev_not_read")
    attached = f"  - {{name: attached, tests: [{TEST}]}}\n"
    config = github_config(tmp_path, extra=attached)  # one route runs, the other cannot
    code, out, _ = run(capsys, "simulate", "gh", RELEASE, "--config", config)
    assert code == 4
    assert "partial (HTTP 502)" in out


def test_simulate_exits_0_when_it_predicts_a_start(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("REVYL_API_KEY", raising=False)
    config = github_config(tmp_path, api=", api: {token: {env: GH_TOKEN}}")
    code, out, _ = run(capsys, "simulate", "gh", RELEASE, "--config", config)
    assert code == 0
    assert "decision  dry_run (HTTP 200)" in out
    assert "if token  triggered (HTTP 200)" in out
    assert "label 'v2.4.0-rc.1'" in out  # the default label of a build with no build number


def test_simulate_warns_of_an_ios_device_build_to_ingest(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("REVYL_API_KEY", "rev_not_read")
    config = github_config(tmp_path, api=", api: {token: {env: GH_TOKEN}}", asset="*.ipa")
    code, out, _ = run(capsys, "simulate", "gh", RELEASE, "--config", config)
    assert code == 0  # the relay would start it: a warning, not a refusal
    assert (
        "warning   route r: ingests 'Shopper-2.4.0-190-adhoc.ipa', an iOS device build (.ipa): "
        "Revyl runs iOS tests on simulators, which cannot install one"
    ) in out


class BuildSystemApi(FakeHTTPServer):
    """Answers anything; simulate must not call it at all."""

    def handle(self, call: RecordedCall) -> Reply:
        return json_reply(200, {})


def test_simulate_shows_what_enrichment_would_fetch_without_fetching_it(capsys, tmp_path):
    with BuildSystemApi() as api:
        config = write(
            tmp_path,
            "sources:\n"
            "  bitrise:\n"
            "    secret: {secret: bitrise-webhook-secret}\n"
            f"    api: {{url: {api.url}, token: {{secret: bitrise-token}}}}\n"
            f"routes: [{{name: r, build: {{lookup: {{app_id: {APP}}}}}, tests: [{TEST}]}}]\n",
        )
        sample = str(PAYLOADS / "bitrise-build-finished.json")
        code, out, _ = run(capsys, "simulate", "bitrise", sample, "--config", config, "--json")
        assert api.calls == []
    report = json.loads(out)
    assert code == 0
    assert report["sender_headers"] == {"bitrise-event-type": "build/finished"}
    enrichment = report["enrichment"]
    assert enrichment["secrets"] == ["secret bitrise-token"]
    (request,) = enrichment["requests"]
    assert request["method"] == "GET"
    assert request["url"].startswith(f"{api.url}/v0.1/apps/")
    assert request["headers"]["Authorization"] == "***"
    assert report["decision_on"].startswith("the payload alone")


def test_simulate_a_chat_ops_command_shows_its_reply(capsys, tmp_path):
    config = write(
        tmp_path,
        "sources: {slack: {secret: {env: S}, team_id: T0001}}\n"
        f"routes: [{{name: smoke, tests: [{TEST}]}}]\n",
    )
    command = tmp_path / "command.txt"
    command.write_text("team_id=T0001&channel_id=C1&user_id=U1&trigger_id=t.1&text=run+smoke")
    code, out, _ = run(capsys, "simulate", "slack", str(command), "--config", config, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["decision"] == "dry_run"
    assert report["routes"][0]["tests"] == [TEST]
    assert "smoke" in json.dumps(report["reply"])
    assert "requests" not in report


# --- send ------------------------------------------------------------------------------------


ROUTES = f"""
sources:
  eas: {{secret: {{env: EAS_WEBHOOK_SECRET}}}}
  ci: {{type: generic, secret: {{secret: ci-webhook-secret}}}}
routes:
  - {{name: ios, when: {{platform: ios}}, build: {{ingest: {{app_id: {APP}}}}}, tests: [{TEST}]}}
"""


@pytest.fixture
def relay(start_relay, revyl_yaml, tmp_path):
    process = start_relay(revyl_yaml + ROUTES, env={"EAS_WEBHOOK_SECRET": EAS_SECRET})
    process.config_file = write(tmp_path, ROUTES)
    return process


def test_send_signs_as_the_source_does_and_prints_the_answer(
    capsys, relay, fake_revyl, monkeypatch
):
    monkeypatch.setenv("EAS_WEBHOOK_SECRET", EAS_SECRET)
    code, out, _ = run(
        capsys, "send", "eas", IOS, "--url", relay.url, "--config", relay.config_file
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == [f"POST {relay.url}/eas  (signed: expo-signature)", "200 OK"]
    assert json.loads("\n".join(lines[2:]))["decision"] == "triggered"
    assert len(fake_revyl.calls_to("execute_test_id_async")) == 1


def test_send_reads_a_secret_manager_secret_and_keeps_a_full_url(
    capsys, relay, fake_secret_manager, monkeypatch
):
    monkeypatch.setenv("RELAY_SECRET_MANAGER_ENDPOINT", fake_secret_manager.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    sample = str(PAYLOADS / "standard-webhooks-build-finished.json")
    url = f"{relay.url}/ci"
    code, out, _ = run(capsys, "send", "ci", sample, "--url", url, "--config", relay.config_file)
    assert code == 0
    assert out.startswith(f"POST {url}  (signed: webhook-id, webhook-timestamp, webhook-signature)")
    assert '"decision": "triggered"' in out
    assert GENERIC_SECRET not in out


def test_send_with_the_wrong_secret_shows_the_401_and_fails(capsys, relay, monkeypatch):
    monkeypatch.setenv("WRONG", "not-the-secret")
    argv = ["send", "eas", IOS, "--url", relay.url, "--config", relay.config_file]
    code, out, _ = run(capsys, *argv, "--secret-env", "WRONG")
    assert code == 1
    assert "401 UNAUTHORIZED" in out
    assert '"reason": "signature verification failed"' in out


def test_send_explains_what_is_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("EAS_WEBHOOK_SECRET", raising=False)
    config = write(tmp_path, ROUTES)
    argv = ["send", "eas", IOS, "--config", config]
    _, _, err = run(capsys, *argv, "--url", "http://127.0.0.1:9")
    assert err == "relay: set the environment variable EAS_WEBHOOK_SECRET to the signing secret\n"
    monkeypatch.setenv("EAS_WEBHOOK_SECRET", EAS_SECRET)
    code, _, err = run(capsys, *argv, "--url", "http://127.0.0.1:9")
    assert (code, err) == (1, "relay: could not reach http://127.0.0.1:9/eas (ConnectionError)\n")
    _, _, err = run(capsys, *argv, "--url", "localhost:8080")
    assert err == "relay: --url must be an http(s) URL, got 'localhost:8080'\n"


# --- deploy-info -----------------------------------------------------------------------------


def test_deploy_info_says_dry_run_as_the_deployed_relay_decides_it(tmp_path):
    def dry_run(revyl: str) -> list[str]:
        path = write(tmp_path, f"{revyl}sources: {{eas: {{secret: {{env: X}}}}}}\n")
        return next(line for line in info_lines(load_config(Path(path))) if line[0] == "dry-run")

    # deploy.sh mounts every {env: …} secret, so an env token is set where the relay runs
    assert dry_run("revyl: {token: {env: REVYL_API_KEY}}\n") == ["dry-run", "no"]
    assert dry_run("revyl: {token: {secret: revyl-key}, dry_run: true}\n") == ["dry-run", "yes"]
    assert dry_run("") == ["dry-run", "yes"]


def test_deploy_info_names_each_secret_where_deploy_sh_finds_it():
    assert secret_fields(SecretRef(env="EAS_WEBHOOK_SECRET")) == [
        "eas-webhook-secret",
        "",
        "EAS_WEBHOOK_SECRET",
        "EAS_WEBHOOK_SECRET",
    ]
    assert secret_fields(SecretRef(secret="projects/other/secrets/revyl-key/versions/3")) == [
        "revyl-key",
        "other",
        "",
        "REVYL_KEY",
    ]


VERDICTS_CONFIG = f"""
sources: {{eas: {{secret: {{env: S}}}}}}
verdicts: {{poll_seconds: 5, give_up_seconds: 600}}
reports:
  ci-hook: {{type: webhook, url: "https://ci.example.com/revyl", secret: {{env: HOOK}}}}
  spare: {{type: webhook, url: "https://other.example.com/", secret: {{env: HOOK}}}}
routes:
  - {{name: android, when: {{source: eas, platform: android}}, tests: [{TEST}], report: [ci-hook]}}
"""


def test_check_shows_how_verdicts_are_followed_and_where_they_go(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("S", "a-signing-secret-of-some-length")
    monkeypatch.setenv("HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    config = write(tmp_path, VERDICTS_CONFIG)
    code, out, _ = run(capsys, "check", "--secrets", "--config", config)
    assert code == 0, out
    assert "REPORT" in out.splitlines()[5]  # the routes table has a REPORT column
    assert "ci-hook  webhook to https://ci.example.com/revyl  secret: env HOOK  android" in out
    assert "follow: verdicts in this process" in out
    assert "status every 5 s, given up after 600 s" in out
    assert "note:   report target 'spare' is named by no route" in out


def test_check_secrets_fails_a_webhook_secret_that_cannot_sign(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("S", "short")
    monkeypatch.setenv("HOOK", "not-a-standard-webhooks-secret")
    config = write(tmp_path, VERDICTS_CONFIG)
    code, out, _ = run(capsys, "check", "--secrets", "--config", config)
    assert code == 1
    assert "readable, but shorter than 16 characters" in out  # warned only
    assert "reports.ci-hook.secret must be a Standard Webhooks secret: whsec_" in out


def test_simulate_shows_the_reports_a_delivery_would_lead_to(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("S", "a-signing-secret-of-some-length")
    monkeypatch.setenv("HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    config = write(tmp_path, VERDICTS_CONFIG)
    sample = str(REPO / "tests" / "data" / "payloads" / "eas-build-finished-android.json")
    code, out, _ = run(capsys, "simulate", "eas", sample, "--config", config)
    assert code == 0, out
    assert "reports of android: its runs followed in this process, status every 5 s" in out
    assert "  ci-hook (webhook): check.started then check.finished" in out
    code, out, _ = run(capsys, "simulate", "eas", sample, "--config", config, "--json")
    (followed,) = json.loads(out)["reports"]
    assert [t["target"] for t in followed["targets"]] == ["ci-hook"]
