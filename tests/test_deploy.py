"""deploy.sh against a stub `gcloud` (tests/stubs/gcloud) first on PATH.

The stub logs every call and answers `describe` from a state file, so a first deploy finds
nothing and creates everything, and a second finds everything and creates nothing.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from relay.cli.deploy_info import info_lines
from relay.plugins import load_config

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


TASKS_SA = f"relay-tasks@{PROJECT}.iam.gserviceaccount.com"
QUEUE = f"projects/{PROJECT}/locations/{REGION}/queues/relay-verdicts"


def tasks_config(url: str = URI, account: str = TASKS_SA, queue: str = QUEUE) -> str:
    return FIRESTORE_CONFIG + (
        "verdicts:\n"
        "  follow: cloud-tasks\n"
        "  poll_seconds: 20\n"
        f"  cloud_tasks: {{queue: {queue}, url: '{url}', service_account: {account}}}\n"
    )


@contextmanager
def repo_config(text: str) -> Iterator[str]:
    """A config inside the repository (deploy.sh uploads it), removed afterwards."""
    path = REPO / f"relay.deploy-test-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(text)
    try:
        yield path.name
    finally:
        path.unlink()


@pytest.fixture
def config() -> Iterator[str]:
    with repo_config(FIRESTORE_CONFIG) as name:
        yield name


class Gcloud:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "gcloud.log"
        self.state_dir = tmp_path / "gcloud-state"

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{STUBS}{os.pathsep}{os.environ['PATH']}",
            "GCLOUD_STUB_LOG": str(self.log),
            "GCLOUD_STUB_STATE": str(self.state_dir),
            "RELAY_DEPLOY_PYTHON": sys.executable,
        }

    def set_property(self, key: str, value: str) -> None:
        """What `gcloud config set KEY VALUE` would have set."""
        path = self.state_dir / "config" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)

    def add_secret_version(self, name: str, value: str) -> None:
        secret = self.state_dir / "secrets" / PROJECT / name
        secret.mkdir(parents=True, exist_ok=True)
        (secret / str(len(list(secret.iterdir())) + 1)).write_text(value)

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
            "queues": {
                "/".join(p.parts[-3:]): p.read_text().split()
                for p in sorted(root.glob("queues/*/*/*"))
            },
            "functions": {p.name: int(p.read_text()) for p in sorted(root.glob("functions/*"))},
        }

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def gcloud(tmp_path: Path) -> Gcloud:
    return Gcloud(tmp_path)


def deploy(
    gcloud: Gcloud,
    *args: str,
    env: dict[str, str] | None = None,
    script: Path = REPO / "deploy.sh",
    stdin: int = subprocess.DEVNULL,  # not a terminal: values come from the environment
):
    return subprocess.run(
        [str(script), *args],
        env=clean_env({**gcloud.env(), **(env or {})}),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO / "tests",  # deploy.sh finds its own directory
    )


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without anything deploy.sh or gcloud would read, plus env."""
    ours = {k: v for k, v in os.environ.items() if k not in VALUES and k not in _SETTINGS}
    ours = {k: v for k, v in ours.items() if not k.startswith(("CLOUDSDK_", "RELAY_DEPLOY_"))}
    return {**ours, **env}


# Names deploy.sh once read (now ignored, and named when set).
_SETTINGS = {
    *("PROJECT", "REGION", "CONFIG", "FUNCTION", "SERVICE_ACCOUNT", "MEMORY", "TIMEOUT"),
    *("MIN_INSTANCES", "CPU", "CONCURRENCY", "RUNTIME", "FIRESTORE_LOCATION", "DRY_RUN"),
    *("CPU_ALWAYS", "PYTHON"),
}
ARGS = ("--project", PROJECT, "--region", REGION)


def dry_run_deploy_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("+ gcloud functions deploy"))


def one_line(stderr: str) -> bool:
    """A refusal is one line saying why, never a trace."""
    return stderr.count("\n") == 1 and "Traceback" not in stderr


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
    # the bundled relay.yaml deduplicates in memory
    done = deploy(gcloud, *ARGS, "--dry-run", "--allow-memory-store")
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
    assert one_line(done.stderr)
    # at most, it asked gcloud for its configured project and region
    assert [c for c in gcloud.calls() if c[:2] != ["config", "list"]] == []


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
    assert "--project PROJECT             else gcloud's: $CLOUDSDK_CORE_PROJECT" in done.stdout
    assert "--allow-memory-store" in done.stdout
    assert "dedup.store memory is refused without --allow-memory-store" in done.stdout
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
    args = (*ARGS, "--config", config.name, "--allow-memory-store")
    env = {"SLACK_SIGNING_SECRET": "slack-value"}
    try:
        plain = deploy(gcloud, *args, env=env)
        always = deploy(gcloud, *args, "--cpu-always")
    finally:
        config.unlink()
    assert plain.returncode == 0, plain.stderr
    assert "deploy with --cpu-always (docs/slack.md)" in plain.stdout
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


# --- project and region: the flags, else gcloud's ----------------------------------------------


@pytest.mark.parametrize(
    ("properties", "env", "said"),
    [
        (
            {"project": PROJECT, "functions/region": REGION, "run/region": "us-east1"},
            {},
            "(project from gcloud config core/project, region from gcloud config functions/region)",
        ),
        (
            {"project": "other-proj", "functions/region": "us-east1"},
            {"CLOUDSDK_CORE_PROJECT": PROJECT, "CLOUDSDK_FUNCTIONS_REGION": REGION},
            "(project from $CLOUDSDK_CORE_PROJECT, region from $CLOUDSDK_FUNCTIONS_REGION)",
        ),
        (
            {"project": PROJECT, "run/region": REGION},
            {},
            "region from gcloud config run/region)",
        ),
        (
            {"project": PROJECT},
            {"CLOUDSDK_RUN_REGION": REGION},
            "region from $CLOUDSDK_RUN_REGION)",
        ),
    ],
)
def test_without_flags_the_project_and_region_are_gclouds_and_it_says_whence(
    gcloud, config, properties, env, said
):
    for key, value in properties.items():
        gcloud.set_property(key, value)
    done = deploy(gcloud, "--config", config, "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert f"to project {PROJECT}, region {REGION}\n(project from " in done.stdout
    assert said in done.stdout
    assert f"--region={REGION} --project={PROJECT} " in dry_run_deploy_line(done.stdout)
    # gcloud is asked once, unless its variables answer; nothing is changed
    answered = {"CLOUDSDK_CORE_PROJECT", "CLOUDSDK_FUNCTIONS_REGION"} <= env.keys()
    assert [c[:2] for c in gcloud.calls()] == ([] if answered else [["config", "list"]])


def test_flags_win_over_gcloud_and_gcloud_is_not_asked(gcloud, config):
    gcloud.set_property("project", "other-proj")
    gcloud.set_property("functions/region", "us-east1")
    done = deploy(gcloud, *ARGS, "--config", config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "(project from --project, region from --region)" in done.stdout
    assert gcloud.calls() == []


def test_gclouds_default_region_is_not_taken_for_a_choice(gcloud, config):
    # `gcloud config get functions/region` answers us-central1 when nothing is set; deploy.sh
    # reads only what was set, so with nothing set it asks for a region.
    gcloud.set_property("project", PROJECT)
    done = deploy(gcloud, "--config", config, "--dry-run")
    assert done.returncode == 1
    assert "no region: pass --region REGION (e.g. europe-west1), or set gcloud's" in done.stderr
    assert "gcloud config set functions/region REGION" in done.stderr


# --- settings: flags only, each checked --------------------------------------------------------


def test_the_old_environment_names_are_ignored_and_named(gcloud, config):
    env = {"PROJECT": "ci-runner-proj", "REGION": "us-east1", "TIMEOUT": "5", "CPU": "4"}
    done = deploy(gcloud, *ARGS, "--config", config, "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    note = "note: deploy.sh takes its settings from flags only; it ignores PROJECT, REGION, "
    assert note + "TIMEOUT, CPU in the environment\n" in done.stderr
    line = dry_run_deploy_line(done.stdout)
    assert f"--region={REGION} --project={PROJECT} " in line
    assert "--timeout=300s" in line
    assert "--cpu=1 " in line

    alone = deploy(gcloud, "--config", config, "--dry-run", env=env)
    assert alone.returncode == 1
    assert "no project: pass --project PROJECT" in alone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory", "512"], "--memory '512' is not an amount of memory like 512Mi or 1Gi"),
        (["--memory", "lots"], "--memory 'lots' is not an amount of memory"),
        (["--timeout", "10m"], "--timeout '10m' is not a number of seconds"),
        (["--timeout", "3601"], "--timeout 3601s is more than 3600s, the limit of Cloud Run"),
        (["--timeout", "0"], "--timeout '0' is not a number of seconds"),
        (["--cpu", "two"], "--cpu 'two' is not a number of vCPUs like 1, 2 or 0.5"),
        (["--cpu", "0"], "--cpu '0' is not more than 0"),
        (["--cpu", "0.5"], "--cpu 0.5 is less than 1 vCPU, with which Cloud Run serves one"),
        (["--concurrency", "0"], "--concurrency '0' is not a whole number from 1 to 1000"),
        (["--concurrency", "1001"], "--concurrency '1001' is not a whole number from 1 to 1000"),
        (["--min-instances", "-1"], "--min-instances '-1' is not a whole number from 0 to 1000"),
        (["--min-instances", "one"], "--min-instances 'one' is not a whole number"),
        (["--project", "My_Project"], "project 'My_Project' (--project) is not a project id"),
        (["--region", "Europe West"], "region 'Europe West' (--region) is not a region like"),
        (["--region", "us-central1 "], "region 'us-central1 ' (--region) is not a region"),
        (["--function", "Relay!"], "--function 'Relay!' is not a function name"),
        (["--service-account", "sa"], "--service-account 'sa' is neither an account id"),
        (["--runtime", "nodejs20"], "--runtime 'nodejs20' is not a Python runtime"),
        (["--firestore-location", "EU"], "--firestore-location 'EU' is not a location"),
        (["--memory"], "--memory needs a value"),
        (["--memory", "--dry-run"], "--memory needs a value"),
        (["--project="], "--project needs a value"),
    ],
)
def test_refuses_a_setting_that_is_not_one(gcloud, config, args, message):
    done = deploy(gcloud, *ARGS, "--config", config, "--dry-run", *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert one_line(done.stderr)
    assert gcloud.calls() == []


def test_refuses_gclouds_project_when_it_is_not_one(gcloud, config):
    env = {"CLOUDSDK_CORE_PROJECT": "Not A Project"}
    done = deploy(gcloud, "--region", REGION, "--config", config, "--dry-run", env=env)
    assert done.returncode == 1
    assert "project 'Not A Project' ($CLOUDSDK_CORE_PROJECT) is not a project id" in done.stderr


def test_takes_flag_equals_value_and_the_settings_cloud_run_allows(gcloud, config):
    where = (f"--project={PROJECT}", f"--region={REGION}", f"--config={config}", "--dry-run")
    args = ("--memory=1Gi", "--cpu=0.5", "--concurrency=1", "--timeout=300s", "--min-instances=2")
    done = deploy(gcloud, *where, *args)
    assert done.returncode == 0, done.stderr
    line = dry_run_deploy_line(done.stdout)
    for flag in ("--memory=1Gi", "--cpu=0.5", "--concurrency=1", "--timeout=300s"):
        assert f" {flag} " in line
    assert "--min-instances=2" in line
    assert "warning" not in done.stderr  # 300s is the config's lease


def test_refuses_a_lease_longer_than_a_function_may_run(gcloud):
    with repo_config(FIRESTORE_CONFIG.replace("lease_seconds: 300", "lease_seconds: 4000")) as c:
        done = deploy(gcloud, *ARGS, "--config", c, "--dry-run")
    assert done.returncode == 1
    assert "dedup.lease_seconds 4000 is more than 3600, the limit of Cloud Run" in done.stderr
    assert one_line(done.stderr)


# --- the memory store --------------------------------------------------------------------------


def test_the_memory_store_is_refused_unless_allowed_and_then_warned_about(gcloud):
    refused = deploy(gcloud, *ARGS)  # the bundled relay.yaml: dedup.store memory
    assert refused.returncode == 1
    assert "relay.yaml has dedup.store memory, which a deployment cannot rely on" in refused.stderr
    assert "redelivery reaching another instance starts its runs twice" in refused.stderr
    assert "pass --allow-memory-store to deploy it anyway" in refused.stderr
    assert one_line(refused.stderr)
    assert gcloud.calls() == []

    allowed = deploy(gcloud, *ARGS, "--dry-run", "--allow-memory-store")
    assert allowed.returncode == 0, allowed.stderr
    assert "deploy.sh: warning: dedup.store is memory (--allow-memory-store)" in allowed.stderr
    assert "note: dedup.store memory: a redelivery to another instance starts" in allowed.stdout


def test_a_firestore_config_gets_no_memory_warning(gcloud, config):
    done = deploy(gcloud, *ARGS, "--config", config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "memory" not in done.stderr + done.stdout.replace("--memory=512Mi", "")


# --- the Python it needs -----------------------------------------------------------------------


def python_without_the_requirements(directory: Path) -> Path:
    """A `python3` that cannot import the relay's requirements (site-packages off)."""
    directory.mkdir(exist_ok=True)
    python = directory / "python3"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    return python


def test_without_venv_it_says_what_to_run_instead_of_blaming_the_config(gcloud, tmp_path):
    # A checkout without .venv: deploy.sh, the relay package and a config, nothing installed.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "deploy.sh").write_bytes((REPO / "deploy.sh").read_bytes())
    (checkout / "deploy.sh").chmod(0o755)
    (checkout / "relay").symlink_to(REPO / "relay")
    (checkout / "relay.yaml").write_text(FIRESTORE_CONFIG)
    bare = python_without_the_requirements(tmp_path / "bin")
    env = {"PATH": f"{bare.parent}{os.pathsep}{gcloud.env()['PATH']}", "RELAY_DEPLOY_PYTHON": ""}
    done = deploy(gcloud, *ARGS, "--dry-run", script=checkout / "deploy.sh", env=env)
    assert done.returncode == 1
    assert "no .venv here, and python3 cannot import the relay (ModuleNotFoundError:" in done.stderr
    assert "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt" in done.stderr
    assert "config" not in done.stderr
    assert one_line(done.stderr)

    chosen = deploy(gcloud, *ARGS, "--dry-run", env={"RELAY_DEPLOY_PYTHON": str(bare)})
    assert chosen.returncode == 1
    assert f"RELAY_DEPLOY_PYTHON={bare} cannot import the relay (ModuleNotFoundError" in (
        chosen.stderr
    )
    assert one_line(chosen.stderr)


# --- empty secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", " \t\n "])
def test_refuses_to_store_an_empty_or_whitespace_secret_from_the_environment(gcloud, config, blank):
    done = deploy(gcloud, *ARGS, "--config", config, env={**VALUES, "EAS_WEBHOOK_SECRET": blank})
    assert done.returncode == 1
    assert (
        "secret eas-webhook-secret: $EAS_WEBHOOK_SECRET is empty or only whitespace" in done.stderr
    )
    assert one_line(done.stderr)
    assert gcloud.state()["secrets"] == {}  # read before creating: no empty secret left behind
    assert not any(c[:2] == ["functions", "deploy"] for c in gcloud.calls())


def deploy_typing(gcloud: Gcloud, typed: bytes, *args: str, env: dict[str, str]):
    """deploy.sh in a terminal, where the user types `typed`."""
    terminal, keyboard = pty.openpty()
    try:
        os.write(keyboard, typed)
        return deploy(gcloud, *args, env=env, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(keyboard)


def test_a_value_typed_at_the_prompt_is_stored_unseen_and_a_blank_one_refused(gcloud, config):
    others = {k: v for k, v in VALUES.items() if k != "EAS_WEBHOOK_SECRET"}
    refused = deploy_typing(gcloud, b"   \n", *ARGS, "--config", config, env=others)
    assert refused.returncode == 1
    assert "Value of the secret eas-webhook-secret (not shown): " in refused.stderr
    assert "secret eas-webhook-secret: the value typed is empty or only whitespace" in (
        refused.stderr
    )
    assert gcloud.state()["secrets"] == {}

    done = deploy_typing(gcloud, b"typed-value-5d2e\n", *ARGS, "--config", config, env=others)
    assert done.returncode == 0, done.stderr
    assert gcloud.state()["secrets"][f"{PROJECT}/eas-webhook-secret"] == ["typed-value-5d2e"]
    assert "typed-value-5d2e" not in done.stdout + done.stderr


def test_an_existing_secret_whose_latest_version_is_blank_gets_a_new_one(gcloud, config):
    gcloud.add_secret_version("eas-webhook-secret", "an old value")
    gcloud.add_secret_version("eas-webhook-secret", " \n")
    refused = deploy(gcloud, *ARGS, "--config", config)  # and no value to replace it with
    assert refused.returncode == 1
    warning = "secret eas-webhook-secret: its latest version is empty or only whitespace"
    assert warning in refused.stderr
    assert "secret eas-webhook-secret needs a value: set EAS_WEBHOOK_SECRET" in refused.stderr
    assert not any(c[:2] == ["functions", "deploy"] for c in gcloud.calls())

    done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    assert gcloud.state()["secrets"][f"{PROJECT}/eas-webhook-secret"] == [
        "an old value",
        " \n",
        VALUES["EAS_WEBHOOK_SECRET"],
    ]
    everything = done.stdout + done.stderr + refused.stdout + refused.stderr
    assert "an old value" not in everything
    assert not any(value in everything for value in VALUES.values())
    accesses = [c for c in gcloud.calls() if c[:3] == ["secrets", "versions", "access"]]
    assert accesses[0] == [
        "secrets",
        "versions",
        "access",
        "latest",
        "--secret=eas-webhook-secret",
        f"--project={PROJECT}",
    ]


def test_an_existing_secret_it_cannot_read_is_left_as_it_is_with_a_warning(gcloud, config):
    gcloud.add_secret_version("eas-webhook-secret", "")
    (gcloud.state_dir / "unreadable").mkdir()
    (gcloud.state_dir / "unreadable" / "eas-webhook-secret").touch()
    done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    assert "secret eas-webhook-secret: could not read its latest version to check" in done.stderr
    assert gcloud.state()["secrets"][f"{PROJECT}/eas-webhook-secret"] == [""]


# --- verdicts through Cloud Tasks --------------------------------------------------------------

RETRIES = [
    "--max-attempts=5",
    "--min-backoff=20s",
    "--max-backoff=300s",
    "--max-doublings=4",
    "--max-retry-duration=5400s",
]


def test_cloud_tasks_first_deploy_creates_the_queue_its_account_and_roles(gcloud):
    with repo_config(tasks_config()) as config:
        done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    calls = gcloud.calls()
    assert "cloudtasks.googleapis.com" in calls[0]
    state = gcloud.state()
    assert state["queues"] == {f"{PROJECT}/{REGION}/relay-verdicts": RETRIES}
    assert state["service_accounts"] == [TASKS_SA, SA]
    member = f"serviceAccount:{SA}"
    assert [QUEUE, member, "roles/cloudtasks.enqueuer"] in state["bindings"]
    assert [TASKS_SA, member, "roles/iam.serviceAccountUser"] in state["bindings"]
    # all of it before the function, which may enqueue as soon as it runs
    kinds = [c[:3] for c in calls]
    assert kinds.index(["tasks", "queues", "create"]) < kinds.index(
        ["functions", "deploy", "revyl-relay"]
    )
    assert f"status checks {URI}   (verdicts.cloud_tasks.url: the function URL)" in done.stdout

    gcloud.clear_log()
    with repo_config(tasks_config()) as config:
        again = deploy(gcloud, *ARGS, "--config", config)
    assert again.returncode == 0, again.stderr
    assert creates(gcloud.calls()) == []
    assert "queue exists (left as it is" in again.stdout
    assert f"service account {TASKS_SA} exists" in again.stdout
    assert gcloud.state()["bindings"] == state["bindings"]


def test_cloud_tasks_dry_run_prints_it_all(gcloud):
    with repo_config(tasks_config()) as config:
        done = deploy(gcloud, *ARGS, "--config", config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert gcloud.calls() == []
    out = done.stdout
    location = f"--location={REGION} --project={PROJECT}"
    member = f"--member=serviceAccount:{SA}"
    for line in [
        f"# Cloud Tasks queue {QUEUE}: status checks every 20s, as {TASKS_SA}",
        f"+ gcloud tasks queues describe relay-verdicts {location}",
        f"+ gcloud tasks queues create relay-verdicts {location} {' '.join(RETRIES)} --quiet"
        "   # if missing",
        f"+ gcloud iam service-accounts describe {TASKS_SA} --project={PROJECT}",
        "+ gcloud iam service-accounts create relay-tasks",
        f"+ gcloud tasks queues add-iam-policy-binding relay-verdicts {location} {member}"
        " --role=roles/cloudtasks.enqueuer --quiet",
        f"+ gcloud iam service-accounts add-iam-policy-binding {TASKS_SA} --project={PROJECT}"
        f" {member} --role=roles/iam.serviceAccountUser --condition=None --quiet",
        f"status checks {URI}   (verdicts.cloud_tasks.url: checked after the deploy",
    ]:
        assert line in out
    assert "cloudtasks.googleapis.com" in next(
        line for line in out.splitlines() if "services enable" in line
    )


def test_cloud_tasks_url_that_is_not_the_functions_is_said_after_the_deploy(gcloud):
    wrong = "https://revyl-relay-old000000-ew.a.run.app"
    with repo_config(tasks_config(url=wrong)) as config:
        done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 3
    assert gcloud.state()["functions"] == {"revyl-relay": 1}  # deployed all the same
    assert done.stderr.endswith(
        "deploy.sh: verdicts.cloud_tasks.url is not the URL of function revyl-relay:\n"
        f"  config    {wrong}   ({config})\n"
        f"  function  {URI}\n"
        "The function is deployed, but it would send its status checks elsewhere and report\n"
        f"no verdict (a first deploy learns the URL only now). Set url: {URI}\n"
        f"under verdicts.cloud_tasks in {config}, then run deploy.sh again.\n"
    )
    assert "NOT the function URL" in done.stdout
    assert f"  eas        {URI}/eas\n" in done.stdout  # the rest is printed first


def test_cloud_tasks_url_may_be_the_cloudfunctions_net_one_with_a_caveat(gcloud):
    other = f"https://{REGION}-{PROJECT}.cloudfunctions.net/revyl-relay"
    with repo_config(tasks_config(url=other)) as config:
        done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    assert "the function's cloudfunctions.net URL; that a path after it reaches the relay is" in (
        done.stdout
    )


def test_cloud_tasks_as_the_functions_own_account(gcloud):
    with repo_config(tasks_config(account=SA)) as config:
        done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    state = gcloud.state()
    assert state["service_accounts"] == [SA]
    assert [SA, f"serviceAccount:{SA}", "roles/iam.serviceAccountUser"] in state["bindings"]
    assert "the tasks' tokens are for the function's own account" in done.stdout


def test_cloud_tasks_account_of_another_project_must_exist(gcloud):
    theirs = "status-checks@shared-proj.iam.gserviceaccount.com"
    with repo_config(tasks_config(account=theirs)) as config:
        missing = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
        assert missing.returncode == 1
        assert f"service account {theirs} (verdicts.cloud_tasks.service_account) not found" in (
            missing.stderr
        )
        assert "it is not of project demo-proj, so deploy.sh does not create it" in missing.stderr
        assert not any(c[:2] == ["functions", "deploy"] for c in gcloud.calls())

        (gcloud.state_dir / "service-accounts" / theirs).touch()
        done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    assert [theirs, f"serviceAccount:{SA}", "roles/iam.serviceAccountUser"] in (
        gcloud.state()["bindings"]
    )


def test_cloud_tasks_queue_of_another_project_gets_its_api_there(gcloud):
    queue = f"projects/ops-proj/locations/{REGION}/queues/relay-verdicts"
    with repo_config(tasks_config(queue=queue)) as config:
        done = deploy(gcloud, *ARGS, "--config", config, env=VALUES)
    assert done.returncode == 0, done.stderr
    calls = gcloud.calls()
    assert "cloudtasks.googleapis.com" not in calls[0]
    assert ["services", "enable", "cloudtasks.googleapis.com", "--project=ops-proj", "--quiet"] in (
        calls
    )
    assert list(gcloud.state()["queues"]) == [f"ops-proj/{REGION}/relay-verdicts"]


# --- deploy-info -------------------------------------------------------------------------------


def info(tmp_path: Path, text: str) -> list[list[str]]:
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return info_lines(load_config(path))


def test_deploy_info_has_a_tasks_line_only_with_follow_cloud_tasks(tmp_path):
    lines = info(tmp_path, tasks_config().replace("poll_seconds: 20", "poll_seconds: 12.5"))
    assert [line for line in lines if line[0] == "tasks"] == [
        ["tasks", QUEUE, TASKS_SA, URI, "13", "5400"]  # whole seconds, rounded up
    ]
    assert ["store", "firestore"] in lines
    local = info(tmp_path, FIRESTORE_CONFIG + "verdicts: {follow: local}\n")
    assert not any(line[0] == "tasks" for line in local)
    memory = info(tmp_path, FIRESTORE_CONFIG.replace("store: firestore", "store: memory"))
    assert ["store", "memory"] in memory


def test_verdicts_followed_locally_are_refused_unless_allowed(gcloud):
    local = FIRESTORE_CONFIG + "verdicts: {follow: local}\n"
    with repo_config(local) as name:
        refused = deploy(gcloud, *ARGS, "--config", name, "--dry-run")
        assert refused.returncode == 1
        assert "verdicts.follow local, which a deployment cannot rely on" in refused.stderr
        assert "--allow-local-verdicts" in refused.stderr
        assert gcloud.calls() == []
        allowed = deploy(gcloud, *ARGS, "--config", name, "--dry-run", "--allow-local-verdicts")
        assert allowed.returncode == 0, allowed.stderr
        assert "warning: verdicts.follow is local" in allowed.stderr
