"""Shared fixtures: real servers on loopback, and the relay running as production runs it.

- `emulator`: the Firestore emulator (FirestoreEmulator), one per module.
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
from contextlib import contextmanager
from pathlib import Path

import pytest

from relay.sandbox.fakes.revyl import FakeRevyl
from relay.sandbox.fakes.secret_manager import FakeSecretManager
from relay.sandbox.function_process import FunctionProcess
from tests.fakes.firestore_emulator import FirestoreEmulator, missing_reason
from tests.payloads import EAS_SECRET, GENERIC_SECRET

REVYL_TOKEN = "rev_test_token_7f3a9c"
PROJECT = "demo"
SECRETS = {
    "revyl-api-key": REVYL_TOKEN,
    "eas-webhook-secret": EAS_SECRET,
    "ci-webhook-secret": GENERIC_SECRET,
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[FirestoreEmulator]:
    """The Firestore emulator, one per test module (a module's tests may stop and restart it)."""
    reason = missing_reason()
    if reason is not None:
        pytest.fail(f"these tests need the Firestore emulator: {reason}")
    with FirestoreEmulator() as emu:
        yield emu


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


def revyl_block(api_url: str) -> str:
    """The `revyl:` config block: the fake Revyl, its token in (fake) Secret Manager."""
    return (
        f"revyl: {{api_url: {api_url}, app_url: https://app.revyl.ai,"
        " token: {secret: revyl-api-key}, request_timeout: 2, retry_deadline: 3}\n"
    )


def relay_env(config: Path, secret_manager_url: str) -> dict[str, str]:
    return {
        "RELAY_CONFIG": str(config),
        "RELAY_SECRET_MANAGER_ENDPOINT": secret_manager_url,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
    }


@contextmanager
def relay_process(
    folder: Path, config_yaml: str, secret_manager_url: str
) -> Iterator[FunctionProcess]:
    """The relay serving `config_yaml` (for module-scoped fixtures that share one process)."""
    config = folder / "relay.yaml"
    config.write_text(config_yaml)
    env = relay_env(config, secret_manager_url)
    with FunctionProcess(env, log_path=folder / "relay.log") as process:
        yield process


@pytest.fixture
def revyl_yaml(fake_revyl: FakeRevyl) -> str:
    return revyl_block(fake_revyl.url)


StartRelay = Callable[..., FunctionProcess]


@pytest.fixture
def start_relay(tmp_path: Path, fake_secret_manager: FakeSecretManager) -> Iterator[StartRelay]:
    started: list[FunctionProcess] = []

    def start(config_yaml: str, env: dict[str, str] | None = None) -> FunctionProcess:
        config = tmp_path / f"relay-{len(started)}.yaml"
        config.write_text(config_yaml)
        process = FunctionProcess(
            {**relay_env(config, fake_secret_manager.url), **(env or {})},
            log_path=tmp_path / f"relay-{len(started)}.log",
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
