"""Shared fixtures: real servers on loopback, and the relay running as production runs it.

- `fake_revyl`: a FakeRevyl (token `rev_test`), one per session, reset before each test.
- `fake_secret_manager`: a FakeSecretManager holding `revyl-api-key` = `rev_test` and the
  sample signing secrets; counts reset before each test.
- `start_relay(config_yaml, env=None)`: writes the config and starts `functions-framework`
  serving main.py with RELAY_CONFIG, RELAY_SECRET_MANAGER_ENDPOINT and GOOGLE_CLOUD_PROJECT
  set; returns the FunctionProcess (`.url`, `.log_text()`), stopped after the test.
- `revyl_yaml`: the `revyl:` block pointing at the fake Revyl, token from Secret Manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.revyl import FakeRevyl
from tests.fakes.secret_manager import FakeSecretManager
from tests.payloads import EAS_SECRET, GENERIC_SECRET
from tests.support.function_process import FunctionProcess

REVYL_TOKEN = "rev_test_token_7f3a9c"
PROJECT = "demo"
SECRETS = {
    "revyl-api-key": REVYL_TOKEN,
    "eas-webhook-secret": EAS_SECRET,
    "ci-webhook-secret": GENERIC_SECRET,
}


@pytest.fixture(scope="session")
def _revyl_server() -> Iterator[FakeRevyl]:
    with FakeRevyl(token=REVYL_TOKEN) as server:
        yield server


@pytest.fixture
def fake_revyl(_revyl_server: FakeRevyl) -> FakeRevyl:
    _revyl_server.reset()
    _revyl_server.token = REVYL_TOKEN
    _revyl_server.latency = 0.0
    return _revyl_server


@pytest.fixture(scope="session")
def _secret_server() -> Iterator[FakeSecretManager]:
    with FakeSecretManager() as server:
        yield server


@pytest.fixture
def fake_secret_manager(_secret_server: FakeSecretManager) -> FakeSecretManager:
    _secret_server.reset()
    _secret_server.down = False
    for name, value in SECRETS.items():
        _secret_server.set(name, value, project=PROJECT)
    return _secret_server


@pytest.fixture
def revyl_yaml(fake_revyl: FakeRevyl) -> str:
    return (
        f"revyl: {{api_url: {fake_revyl.url}, app_url: https://app.revyl.ai,"
        " token: {secret: revyl-api-key}, request_timeout: 2, retry_deadline: 3}\n"
    )


StartRelay = Callable[..., FunctionProcess]


@pytest.fixture
def start_relay(tmp_path: Path, fake_secret_manager: FakeSecretManager) -> Iterator[StartRelay]:
    started: list[FunctionProcess] = []

    def start(config_yaml: str, env: dict[str, str] | None = None) -> FunctionProcess:
        config = tmp_path / f"relay-{len(started)}.yaml"
        config.write_text(config_yaml)
        process = FunctionProcess(
            {
                "RELAY_CONFIG": str(config),
                "RELAY_SECRET_MANAGER_ENDPOINT": fake_secret_manager.url,
                "GOOGLE_CLOUD_PROJECT": PROJECT,
                **(env or {}),
            },
            log_path=tmp_path / f"relay-{len(started)}.log",
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
