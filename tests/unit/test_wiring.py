"""The relay as wiring assembles it: what it says at start-up about running dry."""

import logging

import pytest

from relay.plugins import parse_config
from relay.wiring import build_relay

SOURCES = "sources: {eas: {secret: {env: EAS_SECRET}}}\n"
ENV = {"EAS_SECRET": "s"}


@pytest.mark.parametrize(
    ("revyl", "hint"),
    [
        (
            "revyl: {token: {env: REVYL_API_KEY}}\n",
            "revyl.token is {env: REVYL_API_KEY} and REVYL_API_KEY is not set (export it)",
        ),
        ("", "the config has no revyl.token (set it, e.g. `token: {env: REVYL_API_KEY}`)"),
        (
            "revyl: {token: {env: REVYL_API_KEY}, dry_run: true}\n",
            "revyl.dry_run is true (remove it to start runs)",
        ),
    ],
)
def test_the_dry_run_hint_says_what_would_start_runs(caplog, revyl, hint):
    with caplog.at_level(logging.WARNING, logger="relay"):
        relay = build_relay(parse_config(revyl + SOURCES), ENV)
    assert relay.dry_run
    (record,) = [r for r in caplog.records if r.getMessage().startswith("dry-run")]
    assert record.getMessage().endswith(hint)


def test_no_hint_with_a_token(caplog):
    config = parse_config("revyl: {token: {env: REVYL_API_KEY}}\n" + SOURCES)
    with caplog.at_level(logging.WARNING, logger="relay"):
        relay = build_relay(config, {**ENV, "REVYL_API_KEY": "rev_x"})
    assert not relay.dry_run
    assert not [r for r in caplog.records if "dry-run" in r.getMessage()]
