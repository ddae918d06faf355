"""The sandbox's pure parts: the config it generates, the commands it prints, its activity
lines; and `python -m relay sandbox` on a busy port (tests/e2e/test_sandbox.py runs it whole)."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from relay.cli import main
from relay.config import secret_refs
from relay.plugins import parse_config
from relay.sandbox import scenario
from relay.sandbox.fakes._http import RecordedCall
from relay.sandbox.net import LOOPBACK
from relay.sandbox.stage import describe
from relay.sources import known_types

URLS = scenario.FakeUrls(
    revyl="http://127.0.0.1:9001",
    github="http://127.0.0.1:9002",
    bitrise="http://127.0.0.1:9003",
    codemagic="http://127.0.0.1:9004",
    app_store_connect="http://127.0.0.1:9005",
    slack_response_url="http://127.0.0.1:9006",
    verdict_webhook="http://127.0.0.1:9007",
)


def config():
    text = scenario.config_yaml(URLS, issuer_id="issuer", key_id="KEY")
    return parse_config(text, "sandbox")


def test_the_config_has_a_source_of_every_type_each_api_at_its_fake():
    sources = config().sources
    assert {settings.type for settings in sources.values()} == set(known_types())
    apis = {name: s.api.url for name, s in sources.items() if getattr(s, "api", None)}
    assert apis == {
        "github": URLS.github,
        "bitrise": URLS.bitrise,
        "codemagic": URLS.codemagic,
        "app-store-connect": URLS.app_store_connect,
    }
    assert sources["slack"].response_url_prefix == "http://127.0.0.1:9006/commands/T0001/"
    assert config().revyl.api_url == URLS.revyl


def test_every_secret_is_in_the_relays_environment_and_every_route_reports():
    parsed = config()
    names = {ref.env for _, ref in secret_refs(parsed)}
    given = {*scenario.SECRETS, *scenario.TOKENS, scenario.ASC_PRIVATE_KEY_ENV}
    assert names == given
    assert all(route.report == ["sandbox-hook"] for route in parsed.routes)
    assert {sample.source for sample in scenario.SAMPLES} == set(parsed.sources)


def test_a_command_sets_the_secret_it_signs_with_and_shows_paths_from_here(tmp_path: Path):
    sample = scenario.SAMPLES[1]  # ci: a whsec_ secret, base64 with `=` in it
    line = scenario.send_command(
        sample,
        python=str(scenario.REPO_ROOT / ".venv" / "bin" / "python"),
        config=tmp_path / "relay.yaml",
        relay_url="http://127.0.0.1:8080",
        workdir=tmp_path,
        cwd=scenario.REPO_ROOT,
    )
    assignment, *argv = shlex.split(line)
    assert assignment == f"CI_WEBHOOK_SECRET={scenario.SECRETS['CI_WEBHOOK_SECRET']}"
    assert argv == [
        ".venv/bin/python", "-m", "relay", "send", "ci",
        "tests/data/payloads/standard-webhooks-build-finished.json",
        "--config", str(tmp_path / "relay.yaml"), "--url", "http://127.0.0.1:8080",
        "--delivery-id", "msg_sandbox_ci_build_187",
    ]  # fmt: skip


def test_the_slack_command_runs_a_route_and_is_answered_on_the_fake_response_url():
    form = dict(parse_qsl(scenario.slack_command(URLS)))
    assert form["text"] == "run ios-smoke 2.4.0 (187)"
    assert config().route("ios-smoke") is not None
    assert form["response_url"].startswith(URLS.slack_prefix)
    assert form["team_id"] == config().sources["slack"].team_id


def test_an_activity_line_says_what_a_verdict_message_carried():
    body = {"type": "check.finished", "data": {"route": "ios-smoke", "verdict": "passed"}}
    call = RecordedCall("POST", "/verdicts", {}, {}, b"", body, status=200)
    assert describe(call) == "POST /verdicts -> 200  check.finished ios-smoke: passed"
    poll = RecordedCall("GET", "/api/v1/tests/x", {"task_id": "t1"}, {}, b"", None, status=200)
    assert describe(poll) == "GET /api/v1/tests/x?task_id=t1 -> 200"


def test_a_busy_port_says_how_to_pick_another(capsys):
    with socket.create_server((LOOPBACK, 0)) as busy:
        port = busy.getsockname()[1]
        code = main(["sandbox", "--port", str(port)])
    assert code == 1
    assert capsys.readouterr().err == (
        f"relay: port {port} is in use (another relay or sandbox?); pick another: "
        f"python -m relay sandbox --port {port + 1}\n"
    )


def test_the_sandbox_has_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--help"])
    assert exited.value.code == 0
    assert "--port" in capsys.readouterr().out
