"""The sandbox running: the fakes (threads of this process), seeded so every sample of
`relay.sandbox.scenario` triggers its route, and the relay as production runs it
(functions-framework serving main.py, a child process) on the generated config.

    with Sandbox(workdir, port=8080) as sandbox:
        print(sandbox.relay.url, sandbox.config_path)
        for line in sandbox.activity():   # what the fakes answered since the last call
            print(line)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode

from relay.sandbox import scenario
from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall
from relay.sandbox.fakes.asc_api import ISSUER_ID, KEY_ID, FakeAppStoreConnect, new_key
from relay.sandbox.fakes.bitrise_api import FakeBitrise, artifact
from relay.sandbox.fakes.codemagic_api import FakeCodemagicApi
from relay.sandbox.fakes.github_api import FakeGitHubApi
from relay.sandbox.fakes.revyl import FakeRevyl
from relay.sandbox.fakes.slack_response_url import FakeSlackResponseUrl
from relay.sandbox.fakes.webhook_receiver import WebhookReceiver
from relay.sandbox.function_process import FunctionProcess
from relay.sandbox.net import Service

BITRISE_ARTIFACTS = [
    artifact("aab1", "app-release.aab", "android-aab"),
    artifact(
        "apk1", "app-release-bitrise-signed.apk", "android-apk",
        package_name="com.acme.shopper", version_name="2.4.0", version_code="1342",
    ),
]  # fmt: skip


@dataclass
class Fake:
    """A fake as the sandbox lists it, and how far its calls have been shown."""

    label: str
    server: FakeHTTPServer
    shown: int = 0


class Sandbox(Service):
    def __init__(self, workdir: Path, *, port: int | None, python: str = sys.executable) -> None:
        self.workdir = workdir
        self.port = port
        self.python = python
        private_key, public_key = new_key()
        self._private_key = private_key
        tokens = scenario.TOKENS
        self.revyl = FakeRevyl(token=tokens["REVYL_API_KEY"])
        self.github = FakeGitHubApi(token=tokens["GITHUB_TOKEN"])
        self.bitrise = FakeBitrise(token=tokens["BITRISE_API_TOKEN"])
        self.codemagic = FakeCodemagicApi(token=tokens["CODEMAGIC_TOKEN"])
        self.asc = FakeAppStoreConnect(public_key)
        self.slack = FakeSlackResponseUrl()
        self.receiver = WebhookReceiver(secret=tokens["VERDICTS_WEBHOOK_SECRET"])
        self.fakes = [
            Fake("Revyl", self.revyl),
            Fake("GitHub API", self.github),
            Fake("Bitrise API", self.bitrise),
            Fake("Codemagic API", self.codemagic),
            Fake("App Store Connect API", self.asc),
            Fake("Slack response_url", self.slack),
            Fake("verdict webhook", self.receiver),
        ]
        self.relay: FunctionProcess | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "relay.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "relay.log"

    @property
    def urls(self) -> scenario.FakeUrls:
        return scenario.FakeUrls(
            revyl=self.revyl.url,
            github=self.github.url,
            bitrise=self.bitrise.url,
            codemagic=self.codemagic.url,
            app_store_connect=self.asc.url,
            slack_response_url=self.slack.url,
            verdict_webhook=self.receiver.url,
        )

    # lifecycle

    def start(self) -> Self:
        for fake in self.fakes:
            fake.server.start()
        self._seed()
        self._write_files()
        env = {
            "RELAY_CONFIG": str(self.config_path),
            **scenario.SECRETS,
            **scenario.TOKENS,
            scenario.ASC_PRIVATE_KEY_ENV: self._private_key,
        }
        self.relay = FunctionProcess(
            env, port=self.port, log_path=self.log_path, python=self.python
        )
        self.relay.start()
        return self

    def stop(self) -> int | None:
        """Stop the relay (its whole process group), then every fake; the relay's exit code."""
        code = self.relay.stop() if self.relay is not None else None
        for fake in self.fakes:
            fake.server.stop()
        return code

    def _seed(self) -> None:
        self.revyl.add_build(scenario.IOS_APP, scenario.IOS_LABEL)
        self.revyl.add_build(scenario.ANDROID_APP, scenario.RUN_COMMIT)
        self.github.add_commit(scenario.REPOSITORY, scenario.RELEASE_TAG, scenario.TAG_COMMIT)
        self.bitrise.add_build(
            scenario.BITRISE_APP,
            scenario.BITRISE_BUILD,
            BITRISE_ARTIFACTS,
            **scenario.BITRISE_DETAILS,
        )
        self.asc.add_upload(
            scenario.ASC_UPLOAD,
            version="2.4.0",
            build_number="187",
            bundle_id="com.acme.shopper",
        )

    def _write_files(self) -> None:
        config = scenario.config_yaml(self.urls, issuer_id=ISSUER_ID, key_id=KEY_ID)
        self.config_path.write_text(config, encoding="utf-8")
        (self.workdir / scenario.SLACK_FILE).write_text(
            scenario.slack_command(self.urls), encoding="utf-8"
        )

    # what to print

    def commands(self, cwd: Path) -> list[tuple[scenario.Sample, str]]:
        assert self.relay is not None, "start the sandbox first"
        return [
            (
                sample,
                scenario.send_command(
                    sample,
                    python=self.python,
                    config=self.config_path,
                    relay_url=self.relay.url,
                    workdir=self.workdir,
                    cwd=cwd,
                ),
            )
            for sample in scenario.SAMPLES
        ]

    def activity(self) -> list[str]:
        """One line per call the fakes answered since the last time, in the order they came."""
        answered: list[tuple[float, str]] = []
        for fake in self.fakes:
            calls = fake.server.calls
            while fake.shown < len(calls) and calls[fake.shown].status is not None:
                call = calls[fake.shown]
                answered.append((call.received_at, f"{fake.label}: {describe(call)}"))
                fake.shown += 1
        return [line for _, line in sorted(answered)]


def describe(call: RecordedCall) -> str:
    """A call as the activity log shows it: method, path, status, and what it carried."""
    query = f"?{urlencode(call.query)}" if call.query else ""
    line = f"{call.method} {call.path}{query} -> {call.status}"
    detail = _detail(call.json)
    return f"{line}  {detail}" if detail else line


def _detail(body: Any) -> str:
    """The one thing worth seeing in a body: a verdict message, a Slack reply, a run started."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("type"), str) and isinstance(body.get("data"), dict):
        data = body["data"]
        verdict = f": {data['verdict']}" if data.get("verdict") else ""
        return f"{body['type']} {data.get('route')}{verdict}"
    if "text" in body and "response_type" in body:
        return f"({body['response_type']}) {body['text']}"
    for key in ("test_id", "workflow_id"):
        if body.get(key):
            return f"{key} {body[key]}"
    if body.get("from_url"):
        return f"version {body.get('version')!r} from {body['from_url']}"
    return ""
