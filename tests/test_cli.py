"""`python -m relay`: check, simulate and send, run as a user runs them.

The commands run in-process through `relay.cli.main` (argv in, exit code and output out);
`send` posts to a relay started as production runs it, and the Secret Manager reads go to the
fake Secret Manager on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli import main
from relay.cli.deploy_info import info_lines, secret_fields
from relay.config import SecretRef
from relay.plugins import load_config
from tests.conftest import PROJECT
from tests.fakes._http import FakeHTTPServer, RecordedCall, Reply, json_reply
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
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert done.stdout.splitlines()[-1] == "0 False False"


def test_a_usage_mistake_is_one_line_and_no_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "check", "--config", str(tmp_path / "missing.yaml"))
    assert code == 1
    assert (
        err == f"relay: cannot read config {tmp_path / 'missing.yaml'}: No such file or directory\n"
    )


# --- check -----------------------------------------------------------------------------------


def test_check_prints_the_sources_and_routes_of_the_bundled_config(capsys, monkeypatch):
    monkeypatch.delenv("REVYL_API_KEY", raising=False)
    monkeypatch.chdir(REPO)
    code, out, _ = run(capsys, "check", "--config", BUNDLED)
    assert code == 0
    assert out.startswith("relay.yaml: valid (2 sources, 3 routes)\n")
    assert "eas     eas      secret: env EAS_WEBHOOK_SECRET  /eas" in out
    assert (
        "ios-smoke      eas     platform=ios profile=preview  ingest app 5b0d3c1e"
        "               0f8f6c1a  7c6b5a49"
    ) in out
    assert "label {version}-{build_number}" in out
    assert "token from env REVYL_API_KEY (not set in this shell: dry-run here)" in out


def test_check_names_the_key_and_the_problem_of_a_bad_config(capsys, tmp_path):
    config = write(
        tmp_path,
        "sources: {eas: {secret: {env: X}}}\nroutes: [{name: r, tests: [smoke]}]\n",
    )
    code, out, err = run(capsys, "check", "--config", config)
    assert (code, out) == (1, "")
    assert err == f"relay: {config}: routes.0.tests.0: not a UUID: 'smoke'\n"


def test_check_notes_a_source_no_route_takes(capsys, tmp_path):
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
        "          no Revyl token is configured: nothing was started\n"
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
    assert code == 0
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
    assert (code, out) == (1, "")
    assert (
        err == "relay: the relay would answer 400 rejected: EAS payload needs `id` and `status`\n"
    )
    code, _, err = run(capsys, "simulate", "bitrise", str(body), "--config", BUNDLED)
    assert err == "relay: no source named 'bitrise' in the config (sources: ci, eas)\n"


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
