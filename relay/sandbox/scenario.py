"""What `python -m relay sandbox` sets up, as data (no I/O): the config that wires every source to
its fake, what the fakes are seeded with so each bundled sample triggers its route, the Slack
command it posts, and the `python -m relay send` line of each sample.

The secrets are the sandbox's own and not secret: they sign the samples on loopback, where the
relay talks to nothing but the fakes. They reach the relay as `{env: ...}` in its environment,
and each printed command sets the one it signs with.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO_ROOT / "tests" / "data" / "payloads"

ANDROID_APP = "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"
IOS_APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
ANDROID_TEST = "2b0f8e3c-4d5e-4f60-8b12-c3d4e5f6a7b8"
IOS_TESTS = ("0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7")
IOS_WORKFLOW = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"

# What the samples name, and the fakes are seeded with
REPOSITORY = "acme/shopper"
RELEASE_TAG, TAG_COMMIT = "v2.4.0-rc.1", "4e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5"
RUN_COMMIT = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"  # the workflow run's head_sha
BITRISE_APP, BITRISE_BUILD = "305da28f92b6b419", "7feee0a4-61f4-4eb6-a019-368cf9ac0d82"
BITRISE_DETAILS: Mapping[str, Any] = {
    "commit_hash": "3b1f0c9e5d7a4f2b8c6e0a1d3f5b7c9e1a2b4c6d",
    "branch": "feature/coupon-rounding",
    "pull_request_id": 412,
    "triggered_workflow": "android-preview",
    "build_number": 1342,
}
ASC_UPLOAD = "e59c1dca-4f3b-4d2a-9c8e-7b6a5f4e3d21"
IOS_LABEL = "2.4.0 (187)"  # the App Store Connect upload's, and what `/revyl run` asks for
SLACK_TEAM = "T0001"  # the fake response_url's workspace
SLACK_TRIGGER = "13345224609.738474920.8088930838d88f008e0"


def _whsec(seed: bytes) -> str:
    return "whsec_" + base64.b64encode(seed).decode()


SECRETS: Mapping[str, str] = {
    "EAS_WEBHOOK_SECRET": "sandbox-eas-secret",
    "CI_WEBHOOK_SECRET": _whsec(b"sandbox-ci-secret-0123456"),
    "GITHUB_WEBHOOK_SECRET": "sandbox-github-secret",
    "BITRISE_WEBHOOK_SECRET": "sandbox-bitrise-secret",
    "CODEMAGIC_WEBHOOK_SECRET": _whsec(b"sandbox-codemagic-secret"),
    "ASC_WEBHOOK_SECRET": "sandbox-asc-secret",
    "SLACK_SIGNING_SECRET": "sandbox-slack-secret",
}
"""The signing secret of each source, by the variable the config reads it from."""

TOKENS: Mapping[str, str] = {
    "REVYL_API_KEY": "sandbox-revyl-token",
    "GITHUB_TOKEN": "sandbox-github-token",
    "BITRISE_API_TOKEN": "sandbox-bitrise-token",
    "CODEMAGIC_TOKEN": "sandbox-codemagic-token",
    "VERDICTS_WEBHOOK_SECRET": _whsec(b"sandbox-verdicts-secret"),
}
"""The credentials the relay calls the fakes with (and the verdict webhook's secret)."""

ASC_PRIVATE_KEY_ENV = "ASC_PRIVATE_KEY"  # a throwaway key made at each start


@dataclass(frozen=True)
class FakeUrls:
    """Where each fake listens (its base URL)."""

    revyl: str
    github: str
    bitrise: str
    codemagic: str
    app_store_connect: str
    slack_response_url: str
    verdict_webhook: str

    @property
    def slack_prefix(self) -> str:
        return f"{self.slack_response_url}/commands/{SLACK_TEAM}/"


CONFIG = Template("""\
# The relay sandbox (python -m relay sandbox, docs/sandbox.md): every source type, each one's
# build system API a fake on loopback, the fake Revyl, and a Standard Webhooks receiver for the
# verdicts. The secrets are the sandbox's own, in the relay's environment ({env: ...}).
revyl:                   # the fake Revyl: runs start there and pass on their second poll
  api_url: $revyl
  token: {env: REVYL_API_KEY}

sources:
  eas: {secret: {env: EAS_WEBHOOK_SECRET}}
  ci: {type: generic, secret: {env: CI_WEBHOOK_SECRET}}
  github:
    secret: {env: GITHUB_WEBHOOK_SECRET}
    api: {url: $github, token: {env: GITHUB_TOKEN}}
  bitrise:
    secret: {env: BITRISE_WEBHOOK_SECRET}
    api: {url: $bitrise, token: {env: BITRISE_API_TOKEN}}
  codemagic:
    secret: {env: CODEMAGIC_WEBHOOK_SECRET}
    api: {url: $codemagic, token: {env: CODEMAGIC_TOKEN}}
  app-store-connect:
    secret: {env: ASC_WEBHOOK_SECRET}
    api:
      url: $asc
      issuer_id: $issuer_id
      key_id: $key_id
      private_key: {env: $private_key_env}
  slack:
    secret: {env: SLACK_SIGNING_SECRET}
    team_id: $slack_team
    response_url_prefix: $slack_prefix

verdicts: {follow: local, poll_seconds: 1}
reports:
  sandbox-hook: {type: webhook, url: $verdicts/verdicts, secret: {env: VERDICTS_WEBHOOK_SECRET}}

routes:
  - name: android-preview                 # eas-build-finished-android.json
    when: {source: eas, platform: android, profile: preview}
    build: {ingest: {app_id: $android_app}, version_label: "{version} ({build_number})"}
    tests: [$android_test]
    report: [sandbox-hook]
  - name: ios-smoke                       # /revyl run ios-smoke 2.4.0 (187)
    when: {source: eas, platform: ios, profile: preview}
    build: {lookup: {app_id: $ios_app}}
    tests: [$ios_test_1, $ios_test_2]
    workflows: [$ios_workflow]
    report: [sandbox-hook]
  - name: ci-builds                       # standard-webhooks-build-finished.json
    when: {source: ci}
    build: {ingest: {app_id: $ios_app}, version_label: "{version}-{build_number}"}
    tests: [$ios_test_1]
    report: [sandbox-hook]
  - name: android-release                 # github-release-published.json
    when: {source: github, version: "v*"}
    build: {ingest: {app_id: $android_app}, asset: "*.apk", version_label: "{version}"}
    tests: [$android_test]
    report: [sandbox-hook]
  - name: android-pr                      # github-workflow-run-completed.json
    when: {source: github, workflow: "Build Android*", branch: "feature/*"}
    build: {lookup: {app_id: $android_app}, version_label: "{commit}"}
    tests: [$android_test]
    report: [sandbox-hook]
  - name: dispatched                      # github-repository-dispatch.json
    when: {source: github, app: "com.acme.*"}
    build: {ingest: {app_id: $android_app}}
    tests: [$android_test]
    report: [sandbox-hook]
  - name: android-smoke                   # bitrise-build-finished.json
    when: {source: bitrise, workflow: "android-*"}
    build: {ingest: {app_id: $android_app}, asset: "*.apk"}
    tests: [$android_test]
    report: [sandbox-hook]
  - name: codemagic-preview               # codemagic-build-finished.json
    when: {source: codemagic, workflow: "android-*", branch: "feature/*"}
    build: {ingest: {app_id: $android_app}, asset: "*.apk"}
    tests: [$android_test]
    report: [sandbox-hook]
  - name: testflight-smoke                # appstoreconnect-build-upload.json
    when: {source: app-store-connect, platform: ios, app: com.acme.shopper}
    build: {lookup: {app_id: $ios_app}, version_label: "{version} ({build_number})"}
    tests: [$ios_test_1]
    workflows: [$ios_workflow]
    report: [sandbox-hook]
""")


def config_yaml(urls: FakeUrls, *, issuer_id: str, key_id: str) -> str:
    """The sandbox's relay config, every API pointed at its fake."""
    return CONFIG.substitute(
        revyl=urls.revyl,
        github=urls.github,
        bitrise=urls.bitrise,
        codemagic=urls.codemagic,
        asc=urls.app_store_connect,
        issuer_id=issuer_id,
        key_id=key_id,
        private_key_env=ASC_PRIVATE_KEY_ENV,
        slack_team=SLACK_TEAM,
        slack_prefix=urls.slack_prefix,
        verdicts=urls.verdict_webhook,
        android_app=ANDROID_APP,
        ios_app=IOS_APP,
        android_test=ANDROID_TEST,
        ios_test_1=IOS_TESTS[0],
        ios_test_2=IOS_TESTS[1],
        ios_workflow=IOS_WORKFLOW,
    )


def slack_command(urls: FakeUrls) -> str:
    """`/revyl run ios-smoke 2.4.0 (187)` as Slack posts it, answered on the fake response_url."""
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": SLACK_TEAM,
            "team_domain": "acme",
            "channel_id": "C04MOBILEQA",
            "channel_name": "mobile-qa",
            "user_id": "U02ABCDEF",
            "user_name": "jdoe",
            "command": "/revyl",
            "text": f"run ios-smoke {IOS_LABEL}",
            "api_app_id": "A123456",
            "response_url": f"{urls.slack_prefix}1234567890123/sandbox",
            "trigger_id": SLACK_TRIGGER,
        }
    )


SLACK_FILE = "slack-run-ios-smoke.txt"  # written next to the config


@dataclass(frozen=True)
class Sample:
    """One delivery the sandbox offers to send: a source's sample and the route it triggers."""

    source: str
    file: str  # a bundled sample's name, or SLACK_FILE
    what: str
    secret_env: str
    options: tuple[str, ...] = ()

    def path(self, workdir: Path) -> Path:
        return workdir / self.file if self.file == SLACK_FILE else SAMPLES_DIR / self.file


SAMPLES = (
    Sample("eas", "eas-build-finished-android.json", "an Android build", "EAS_WEBHOOK_SECRET"),
    Sample(
        "ci",
        "standard-webhooks-build-finished.json",
        "any CI's build",
        "CI_WEBHOOK_SECRET",
        # the event is the webhook-id: a fixed one makes a second send a retry (`duplicate`)
        ("--delivery-id", "msg_sandbox_ci_build_187"),
    ),
    Sample("github", "github-release-published.json", "a release", "GITHUB_WEBHOOK_SECRET"),
    Sample(
        "github", "github-workflow-run-completed.json", "a workflow run", "GITHUB_WEBHOOK_SECRET"
    ),
    Sample(
        "github",
        "github-repository-dispatch.json",
        "a repository dispatch",
        "GITHUB_WEBHOOK_SECRET",
    ),
    Sample("bitrise", "bitrise-build-finished.json", "a finished build", "BITRISE_WEBHOOK_SECRET"),
    Sample(
        "codemagic", "codemagic-build-finished.json", "a finished build", "CODEMAGIC_WEBHOOK_SECRET"
    ),
    Sample(
        "app-store-connect",
        "appstoreconnect-build-upload.json",
        "a processed upload",
        "ASC_WEBHOOK_SECRET",
    ),
    Sample("slack", SLACK_FILE, "/revyl run ios-smoke 2.4.0 (187)", "SLACK_SIGNING_SECRET"),
)
"""Every sample, one per source (GitHub: one per kind of event)."""


def shown(path: Path | str, cwd: Path) -> str:
    """A path as the commands print it: relative when it is under `cwd`, else absolute."""
    path = Path(path)
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def send_command(
    sample: Sample, *, python: str, config: Path, relay_url: str, workdir: Path, cwd: Path
) -> str:
    """The shell line that posts `sample`, signed with its source's secret, to the relay."""
    argv = [
        shown(python, cwd),
        "-m",
        "relay",
        "send",
        sample.source,
        shown(sample.path(workdir), cwd),
        "--config",
        shown(config, cwd),
        "--url",
        relay_url,
        *sample.options,
    ]
    secret = f"{sample.secret_env}={shlex.quote(SECRETS[sample.secret_env])}"
    return f"{secret} {shlex.join(argv)}"
