"""deploy.sh against a stub `gcloud` (tests/stubs/gcloud) first on PATH.

The stub logs every call and answers `describe` from a state file, so a first deploy finds
nothing and creates everything, and a second finds everything and creates nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STUBS = REPO / "tests" / "stubs"
PROJECT = "demo-proj"
REGION = "europe-west1"
SA = f"revyl-relay@{PROJECT}.iam.gserviceaccount.com"
URI = "https://revyl-relay-x7k2p4q9ra-ew.a.run.app"
VALUES = {
    "EAS_WEBHOOK_SECRET": "eas-value-4f1c9a",
    "GITHUB_WEBHOOK_SECRET": "github-value-77b0d2",
    "REVYL_API_KEY": "rev-value-0c3e58",
}
FIRESTORE_CONFIG = """
revyl: {token: {secret: revyl-api-key}}
sources:
  eas: {secret: {secret: eas-webhook-secret}}
  gh: {type: github, secret: {env: GITHUB_WEBHOOK_SECRET}}
routes:
  - name: smoke
    tests: [0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6]
dedup: {store: firestore, collection: relay-events, lease_seconds: 300}
"""


@pytest.fixture
def config() -> Iterator[str]:
    """A config inside the repository (deploy.sh uploads it), removed after the test."""
    path = REPO / f"relay.deploy-test-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(FIRESTORE_CONFIG)
    yield path.name
    path.unlink()


class Gcloud:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "gcloud.log"
        self.state_dir = tmp_path / "gcloud-state"

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{STUBS}{os.pathsep}{os.environ['PATH']}",
            "GCLOUD_STUB_LOG": str(self.log),
            "GCLOUD_STUB_STATE": str(self.state_dir),
            "PYTHON": sys.executable,
        }

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split("\x1f")[:-1] for line in self.log.read_text().splitlines()]

    def state(self) -> dict:
        """What the stub holds, read from its state directory."""
        root = self.state_dir

        def names(sub: str) -> list[str]:
            return sorted(p.name for p in (root / sub).iterdir()) if (root / sub).is_dir() else []

        secrets = {}
        for path in sorted(root.glob("secrets/*/*")):
            versions = sorted(path.iterdir(), key=lambda v: int(v.name))
            secrets[f"{path.parent.name}/{path.name}"] = [v.read_text() for v in versions]
        bindings_file = root / "bindings"
        bindings = bindings_file.read_text().splitlines() if bindings_file.exists() else []
        return {
            "service_accounts": names("service-accounts"),
            "secrets": secrets,
            "bindings": [line.split(" ") for line in bindings],
            "databases": names("databases"),
            "ttl_fields": [list(p.parts[-3:]) for p in sorted(root.glob("ttl/*/*/*"))],
            "functions": {p.name: int(p.read_text()) for p in sorted(root.glob("functions/*"))},
        }

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def gcloud(tmp_path: Path) -> Gcloud:
    return Gcloud(tmp_path)


def deploy(gcloud: Gcloud, *args: str, env: dict[str, str] | None = None):
    clean = {k: v for k, v in os.environ.items() if k not in VALUES and k not in _SETTINGS}
    return subprocess.run(
        [str(REPO / "deploy.sh"), *args],
        env={**clean, **gcloud.env(), **(env or {})},
        stdin=subprocess.DEVNULL,  # not a terminal: values come from the environment
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO / "tests",  # deploy.sh finds its own directory
    )


_SETTINGS = {"PROJECT", "REGION", "CONFIG", "FUNCTION", "SERVICE_ACCOUNT", "TIMEOUT", "DRY_RUN"}


def creates(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if "create" in c[:4] or c[:3] == ["secrets", "versions", "add"]]


def flag_values(call: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in call if a.startswith("--") and "=" in a)


def test_first_deploy_creates_everything_and_prints_the_urls(gcloud, config):
    done = deploy(gcloud, "--project", PROJECT, "--region", REGION, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    calls = gcloud.calls()

    assert calls[2][:4] == ["iam", "service-accounts", "create", "revyl-relay"]
    created_secrets = [c[2] for c in calls if c[:2] == ["secrets", "create"]]
    assert created_secrets == ["eas-webhook-secret", "github-webhook-secret", "revyl-api-key"]
    state = gcloud.state()
    assert state["secrets"] == {
        f"{PROJECT}/eas-webhook-secret": [VALUES["EAS_WEBHOOK_SECRET"]],
        f"{PROJECT}/github-webhook-secret": [VALUES["GITHUB_WEBHOOK_SECRET"]],
        f"{PROJECT}/revyl-api-key": [VALUES["REVYL_API_KEY"]],
    }
    accessor = "roles/secretmanager.secretAccessor"
    assert [b for b in state["bindings"] if b[2] == accessor] == [
        [name, f"serviceAccount:{SA}", accessor] for name in created_secrets
    ]
    assert [PROJECT, f"serviceAccount:{SA}", "roles/datastore.user"] in state["bindings"]

    database = next(c for c in calls if c[:3] == ["firestore", "databases", "create"])
    assert flag_values(database) == {
        "database": "(default)",
        "location": REGION,
        "type": "firestore-native",
        "project": PROJECT,
    }
    assert state["ttl_fields"] == [["(default)", "relay-events", "expires_at"]]

    (function,) = [c for c in calls if c[:2] == ["functions", "deploy"]]
    assert function[2] == "revyl-relay"
    assert {"--gen2", "--trigger-http", "--allow-unauthenticated"} <= set(function)
    assert flag_values(function) == {
        "runtime": "python312",
        "region": REGION,
        "project": PROJECT,
        "source": ".",
        "entry-point": "relay_webhook",
        "service-account": SA,
        "timeout": "300s",  # the config's dedup.lease_seconds
        "memory": "512Mi",
        "min-instances": "0",
        "cpu": "1",
        "concurrency": "8",
        "set-env-vars": f"RELAY_CONFIG={config},GOOGLE_CLOUD_PROJECT={PROJECT},THREADS=8",
        "set-secrets": "GITHUB_WEBHOOK_SECRET=github-webhook-secret:latest",
    }

    assert f"function URL  {URI}" in done.stdout
    assert f"  eas        {URI}/eas\n" in done.stdout
    assert f"  gh         {URI}/gh\n" in done.stdout
    assert f"eas webhook:create --event BUILD --url {URI}/eas" in done.stdout
    everything = done.stdout + done.stderr + gcloud.log.read_text()
    assert not any(value in everything for value in VALUES.values())


def test_a_second_deploy_creates_nothing_and_updates_the_function(gcloud, config):
    args = ("--project", PROJECT, "--region", REGION, "--config", config)
    assert deploy(gcloud, *args, env=VALUES).returncode == 0
    before = gcloud.state()
    gcloud.clear_log()

    again = deploy(gcloud, *args)  # no values needed: every secret has one
    assert again.returncode == 0, again.stderr
    calls = gcloud.calls()
    assert creates(calls) == []
    assert not any(c[:4] == ["firestore", "fields", "ttls", "update"] for c in calls)
    after = gcloud.state()
    assert after["functions"] == {"revyl-relay": 2}
    assert {k: v for k, v in after.items() if k != "functions"} == {
        k: v for k, v in before.items() if k != "functions"
    }
    assert f"  eas        {URI}/eas\n" in again.stdout


def test_a_secret_without_a_version_gets_one_and_a_missing_value_creates_nothing(gcloud, config):
    (gcloud.state_dir / "secrets" / PROJECT / "eas-webhook-secret").mkdir(parents=True)
    args = ("--project", PROJECT, "--region", REGION, "--config", config)

    refused = deploy(gcloud, *args, env={"EAS_WEBHOOK_SECRET": "v"})
    assert refused.returncode == 1
    assert "secret github-webhook-secret needs a value: set GITHUB_WEBHOOK_SECRET" in refused.stderr
    assert "github-webhook-secret" not in json.dumps(gcloud.state()["secrets"])
    assert not any(c[:2] == ["functions", "deploy"] for c in gcloud.calls())

    gcloud.clear_log()
    done = deploy(gcloud, *args, env=VALUES)
    assert done.returncode == 0, done.stderr
    added = [c[3] for c in gcloud.calls() if c[:3] == ["secrets", "versions", "add"]]
    assert added == ["github-webhook-secret", "revyl-api-key"]  # eas got its value above
    assert gcloud.state()["secrets"][f"{PROJECT}/eas-webhook-secret"] == ["v"]


def test_dry_run_prints_every_command_and_runs_none(gcloud):
    done = deploy(gcloud, "--project", PROJECT, "--region", REGION, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert gcloud.calls() == []
    out = done.stdout
    assert "+ gcloud services enable" in out
    assert f"+ gcloud iam service-accounts describe {SA} --project={PROJECT}" in out
    assert "+ gcloud secrets create eas-webhook-secret" in out
    assert "# if missing" in out
    assert "+ gcloud secrets versions add revyl-api-key" in out
    assert "value from $REVYL_API_KEY or a prompt, never shown" in out
    assert "+ gcloud secrets add-iam-policy-binding ci-webhook-secret" in out
    deploy_line = next(line for line in out.splitlines() if "gcloud functions deploy" in line)
    assert "--set-env-vars=RELAY_CONFIG=relay.yaml,GOOGLE_CLOUD_PROJECT=demo-proj" in deploy_line
    assert "--timeout=540s" in deploy_line
    assert "--set-secrets=EAS_WEBHOOK_SECRET=eas-webhook-secret:latest," in deploy_line
    assert "https://<function URL>/eas" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", REGION], "no project: pass --project PROJECT"),
        (["--project", PROJECT], "no region: pass --region REGION"),
        (
            ["--project", PROJECT, "--region", REGION, "--config", "nope.yaml"],
            "nope.yaml not found",
        ),
        (["--project", PROJECT, "--region", REGION, "--config", "tests/payloads.py"], "tests/"),
        (["--project", PROJECT, "--region", REGION, "--frobnicate"], "unknown argument"),
    ],
)
def test_refuses_without_the_settings_it_needs(gcloud, args, message):
    done = deploy(gcloud, *args, "--dry-run")
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.count("\n") == 1  # one line, no trace
    assert gcloud.calls() == []


def test_refuses_a_config_that_would_not_be_uploaded(gcloud, tmp_path):
    outside = tmp_path / "relay.yaml"
    outside.write_text(FIRESTORE_CONFIG)
    args = ("--project", PROJECT, "--region", REGION, "--config", str(outside), "--dry-run")
    done = deploy(gcloud, *args)
    assert done.returncode == 1
    assert "outside" in done.stderr
    assert "would not be uploaded" in done.stderr


def test_refuses_an_invalid_config(gcloud):
    bad = REPO / f"relay.deploy-test-{uuid.uuid4().hex[:8]}.yaml"
    bad.write_text("sources: {eas: {secret: {env: X}}}\nroutes: [{name: r}]\n")
    try:
        done = deploy(gcloud, "--project", PROJECT, "--region", REGION, "--config", bad.name)
    finally:
        bad.unlink()
    assert done.returncode == 1
    assert "routes.0: route 'r' names no `tests` and no `workflows`" in done.stderr
    assert gcloud.calls() == []


def test_help_prints_the_settings(gcloud):
    done = deploy(gcloud, "--help")
    assert done.returncode == 0
    assert "--project PROJECT             required" in done.stdout
    assert "set -euo pipefail" not in done.stdout


SLACK_CONFIG = """
sources:
  slack: {secret: {secret: slack-signing-secret}, team_id: T0001}
routes:
  - name: smoke
    tests: [0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6]
"""


def test_a_slack_source_is_told_about_cpu_always_and_gets_it_when_asked(gcloud):
    config = REPO / f"relay.deploy-test-{uuid.uuid4().hex[:8]}.yaml"
    config.write_text(SLACK_CONFIG)
    args = ("--project", PROJECT, "--region", REGION, "--config", config.name)
    env = {"SLACK_SIGNING_SECRET": "slack-value"}
    try:
        plain = deploy(gcloud, *args, env=env)
        always = deploy(gcloud, *args, "--cpu-always")
    finally:
        config.unlink()
    assert plain.returncode == 0, plain.stderr
    assert "deploy with --cpu-always (README: Chat-ops from Slack)" in plain.stdout
    assert "no revyl.token" in plain.stdout
    assert always.returncode == 0, always.stderr
    assert "--cpu-always" not in always.stdout
    updates = [c for c in gcloud.calls() if c[:3] == ["run", "services", "update"]]
    assert updates == [
        [
            "run",
            "services",
            "update",
            "revyl-relay",
            f"--region={REGION}",
            f"--project={PROJECT}",
            "--cpu=1",
            "--no-cpu-throttling",
            "--quiet",
        ]
    ]
