"""Reading secrets: the real Secret Manager client (REST) against the fake, on loopback.

An empty secret is refused like an unreadable one (an empty HMAC key would let anyone sign),
and concurrent reads of one secret share one fetch, so a Secret Manager that hangs holds each
caller for one timeout at most, not one timeout per caller queued ahead of it."""

from __future__ import annotations

import logging

import pytest

from relay.config import SecretRef
from relay.errors import SecretUnavailable
from relay.secrets import SecretManagerBackend, Secrets
from tests.conftest import PROJECT
from tests.support.threads import at_once

SECRET = SecretRef(secret="eas-webhook-secret")


@pytest.mark.parametrize(
    "value", ["", "   ", "\n", " \t\r\n"], ids=["empty", "spaces", "lf", "mix"]
)
def test_an_empty_secret_is_refused_like_an_unreadable_one(fake_secret_manager, caplog, value):
    fake_secret_manager.set("eas-webhook-secret", value, project=PROJECT)
    secrets = Secrets(
        SecretManagerBackend(fake_secret_manager.url), project=PROJECT, ttl_seconds=60
    )
    with pytest.raises(SecretUnavailable, match="secret 'eas-webhook-secret' is empty"):
        secrets.read(SECRET)
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.secret == "eas-webhook-secret"  # type: ignore[attr-defined]


def test_an_empty_version_after_a_good_one_keeps_the_good_one(fake_secret_manager, caplog):
    secrets = Secrets(SecretManagerBackend(fake_secret_manager.url), project=PROJECT, ttl_seconds=0)
    good = secrets.read(SECRET)
    fake_secret_manager.set("eas-webhook-secret", " ", project=PROJECT)
    assert secrets.read(SECRET) == good
    assert any(r.levelno == logging.ERROR for r in caplog.records)


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_an_empty_environment_variable_is_refused_at_request_time(value):
    secrets = Secrets(None, project=None, ttl_seconds=0, environ={"HOOK": value})  # type: ignore[arg-type]
    with pytest.raises(SecretUnavailable, match="environment variable HOOK is"):
        secrets.read(SecretRef(env="HOOK"))


def test_concurrent_reads_of_one_secret_share_one_fetch(fake_secret_manager):
    fake_secret_manager.latency = 0.5  # slow: all four ask while the first fetch is out
    secrets = Secrets(SecretManagerBackend(fake_secret_manager.url), project=PROJECT, ttl_seconds=0)
    values = at_once(4, lambda _: secrets.read(SECRET))
    assert len(set(values)) == 1
    assert isinstance(values[0], str)
    assert fake_secret_manager.access_count("eas-webhook-secret") == 1


def test_a_hung_secret_manager_holds_each_reader_one_timeout_with_one_fetch(fake_secret_manager):
    fake_secret_manager.latency = 30  # never answers within the test (stopped at teardown)
    backend = SecretManagerBackend(fake_secret_manager.url, timeout=1)
    secrets = Secrets(backend, project=PROJECT, ttl_seconds=60, wait_seconds=1)
    try:
        outcomes = at_once(4, lambda _: secrets.read(SECRET))
    finally:
        fake_secret_manager.latency = 0
    assert [type(o) for o in outcomes] == [SecretUnavailable] * 4
    assert fake_secret_manager.access_count("eas-webhook-secret") == 1
