"""The pre-flight tools predict the live relay: `simulate`, a dry-run relay and a relay with a
token give one answer for the same delivery (no false green).

The live relay runs in process against the fake Revyl and the real Secret Manager client.
"""

from __future__ import annotations

import time

from relay.cli.simulate import simulate
from relay.pipeline import Relay
from relay.plugins import parse_config
from relay.revyl.client import RequestsRevylClient
from relay.secrets import SecretManagerBackend, Secrets
from relay.sources import Delivery
from relay.stores.memory import MemoryEventStore
from tests.conftest import PROJECT
from tests.payloads import payload

APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
PRIVATE_RELEASE = "github-release-published.json"  # repository.private: true
NO_TOKEN = "'shopper-2.4.0-10190-release.apk' is in the private repository"


def config_text(revyl_url: str, api: str = "") -> str:
    return f"""
revyl: {{api_url: {revyl_url}, token: {{secret: revyl-api-key}}, request_timeout: 2}}
sources: {{gh: {{type: github, secret: {{env: GH_SECRET}}{api}}}}}
routes:
  - {{name: android, when: {{source: gh}}, build: {{ingest: {{app_id: {APP}}}, asset: "*.apk"}},
     tests: [{TEST}]}}
"""


def relay_for(text: str, secret_manager, *, dry_run: bool) -> Relay:
    config = parse_config(text)
    return Relay(
        config,
        secrets=Secrets(SecretManagerBackend(secret_manager.url), project=PROJECT, ttl_seconds=0),
        revyl=RequestsRevylClient(config.revyl),
        store=MemoryEventStore(config.dedup.lease_seconds),
        dry_run=dry_run,
    )


def release_delivery(guid: str) -> Delivery:
    headers = {"x-github-event": "release", "x-github-delivery": guid}
    return Delivery(headers, payload(PRIVATE_RELEASE), time.time())


def three_answers(text: str, fake_secret_manager) -> dict[str, tuple[int, str, str | None]]:
    """(status, decision, reason) of a live relay, a dry-run relay and `simulate`."""
    found = {}
    for name, dry_run in (("live", False), ("dry-run", True)):
        relay = relay_for(text, fake_secret_manager, dry_run=dry_run)
        source = relay.source("gh")
        event = source.parse(release_delivery(f"guid-{name}"))
        answer = relay.trigger(source, event)  # the step after verify, parse and enrich
        found[name] = (answer.status, answer.body.decision, answer.body.reason)
    config = parse_config(text)
    relay = relay_for(text, fake_secret_manager, dry_run=True)
    report = simulate(config, relay.source("gh"), release_delivery("guid-sim"), {})
    with_token = report.get("with_token", report)
    found["simulate"] = (with_token["status"], with_token["decision"], with_token["reason"])
    return found


def test_a_private_release_without_an_api_token_fails_alike_everywhere(
    fake_revyl, fake_secret_manager
):
    answers = three_answers(config_text(fake_revyl.url), fake_secret_manager)
    assert answers["live"][:2] == (422, "failed")
    assert NO_TOKEN in (answers["live"][2] or "")
    assert "set sources.gh.api.token" in (answers["live"][2] or "")
    assert answers["dry-run"] == answers["live"]
    assert answers["simulate"][:2] == (422, "failed")
    assert NO_TOKEN in answers["simulate"][2]
    assert fake_revyl.calls == []  # refused at planning time: not one Revyl call


def test_with_an_api_token_the_release_is_planned_with_the_default_label(
    fake_revyl, fake_secret_manager
):
    text = config_text(fake_revyl.url, ", api: {token: {env: GH_TOKEN}}")
    relay = relay_for(text, fake_secret_manager, dry_run=True)
    source = relay.source("gh")
    answer = relay.trigger(source, source.parse(release_delivery("guid-token")))
    assert (answer.status, answer.body.decision) == (200, "dry_run")
    (plan,) = answer.body.plan or []
    assert "problem" not in plan
    assert plan["version_label"] == "v2.4.0-rc.1"  # a release has a tag and no build number
