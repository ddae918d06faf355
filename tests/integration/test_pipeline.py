"""The pipeline's own rules, driven in process against the fake Revyl and the real Secret Manager
client: per-route failures, payloads a route cannot use, and a claim's lease running out.

The build system here is a source defined by the test (the seam every source plugs into), so
each rule is shown without any one build system's quirks.
"""

from __future__ import annotations

import json
import time

from relay.errors import Unavailable
from relay.models import Artifact, Build, Event
from relay.pipeline import Relay
from relay.plugins import parse_config
from relay.revyl.client import RequestsRevylClient
from relay.sandbox.fakes.revyl import EXECUTE_TEST_PATH, Delay, Status
from relay.secrets import SecretManagerBackend, Secrets
from relay.sources import ArtifactLink, Delivery, Source
from relay.stores.memory import MemoryEventStore
from tests.conftest import PROJECT

APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
T1, T2 = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"


class ShelfSource(Source):
    """A test build system: the body is the build; `link_fails` makes minting a link fail."""

    type = "shelf"
    link_fails = False

    def verify(self, delivery: Delivery, secret: str) -> None:
        pass

    def parse(self, delivery: Delivery) -> Event:
        data = json.loads(delivery.body)
        artifacts = tuple(
            Artifact(name=n, url=f"https://ci.example/{n}") for n in data.pop("files", [])
        )
        return Event(
            f"shelf:{data.pop('id')}",
            Build(source="shelf", system="shelf", artifacts=artifacts, **data),
        )

    def artifact_link(self, build: Build, artifact: Artifact, secrets) -> ArtifactLink:
        if self.link_fails:
            raise Unavailable("the shelf API did not answer")
        return ArtifactLink(artifact.url or "")


def relay_for(
    fake_revyl, secret_manager, extra_revyl: str = "", lease: int = 540, retry_deadline: float = 1
) -> Relay:
    config = parse_config(
        f"""
revyl: {{api_url: {fake_revyl.url}, token: {{secret: revyl-api-key}}, request_timeout: 1,
        connect_timeout: 0.5, retry_deadline: {retry_deadline}{extra_revyl}}}
sources: {{eas: {{secret: {{secret: eas-webhook-secret}}}}}}
routes:
  - {{name: attached, tests: [{T1}]}}
  - {{name: ingest, build: {{ingest: {{app_id: {APP}}}}}, tests: [{T2}]}}
dedup: {{lease_seconds: {lease}}}
"""
    )
    secrets = Secrets(SecretManagerBackend(secret_manager.url), project=PROJECT, ttl_seconds=60)
    relay = Relay(
        config,
        secrets=secrets,
        revyl=RequestsRevylClient(config.revyl),
        store=MemoryEventStore(config.dedup.lease_seconds),
        dry_run=False,
    )
    relay.sources["shelf"] = ShelfSource("shelf", config.sources["eas"])
    return relay


def deliver(relay: Relay, **build) -> dict:
    body = json.dumps({"id": str(time.monotonic_ns()), **build}).encode()
    answer = relay.handle("shelf", Delivery({}, body, time.time()))
    return {"status": answer.status, **answer.body.model_dump()}


def outcomes(answer: dict) -> dict[str, str]:
    return {e["route"]: e["outcome"] for e in answer["executions"]}


def test_a_route_whose_artifact_link_fails_does_not_stop_the_others(
    fake_revyl, fake_secret_manager
):
    relay = relay_for(fake_revyl, fake_secret_manager)
    relay.sources["shelf"].link_fails = True
    answer = deliver(relay, version="1.0", build_number="7", files=["app.apk"], platform="android")
    assert answer["status"] == 502
    assert answer["decision"] == "partial"
    assert outcomes(answer) == {"attached": "started", "ingest": "failed"}
    assert answer["errors"][0]["message"] == "the shelf API did not answer"
    assert [c.json["test_id"] for c in fake_revyl.calls_to(EXECUTE_TEST_PATH)] == [T1]


def test_a_payload_no_route_can_use_is_422_not_a_retryable_502(fake_revyl, fake_secret_manager):
    relay = relay_for(fake_revyl, fake_secret_manager)
    relay.config.routes.pop(0)  # only the ingest route: it needs an artifact the build lacks
    answer = deliver(relay, version="1.0", build_number="7")
    assert answer["status"] == 422
    assert answer["decision"] == "failed"
    assert answer["errors"][0]["message"] == "the build has no artifact to ingest"
    assert fake_revyl.calls == []


def test_a_build_that_names_its_revyl_build_skips_ingest_and_lookup(
    fake_revyl, fake_secret_manager
):
    relay = relay_for(fake_revyl, fake_secret_manager)
    answer = deliver(relay, build_version_id="6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12")
    assert answer["decision"] == "triggered"
    assert fake_revyl.calls_to("/builds") == []
    assert {c.json.get("build_version_id") for c in fake_revyl.calls_to(EXECUTE_TEST_PATH)} == {
        "6c1e4d2f-9b5a-4a7f-8e3b-2d4c6f8a0b12"
    }


def test_nothing_starts_once_the_claims_lease_is_running_out(fake_revyl, fake_secret_manager):
    """Another delivery may take over a claim after its lease: this one must stop starting."""
    relay = relay_for(fake_revyl, fake_secret_manager, lease=7)
    fake_revyl.fail("/builds/from-url", Delay(1.2))  # past lease − the margin (0.5 + 1 + 5 s)
    answer = deliver(relay, version="1.0", build_number="7", files=["app.apk"], platform="android")
    assert answer["decision"] == "partial"
    assert outcomes(answer) == {"attached": "started", "ingest": "failed"}
    assert answer["errors"][0]["message"] == "not started: this delivery outlived its claim's lease"
    assert [c.json["test_id"] for c in fake_revyl.calls_to(EXECUTE_TEST_PATH)] == [T1]


def test_retries_of_a_start_end_where_the_delivery_stops_starting_things(
    fake_revyl, fake_secret_manager
):
    """Revyl asks to come back in 1 s; the retry budget (20 s) would allow it, but the claim's
    stop point (0.5 s after the claim: lease 7 − margin 6.5) comes first: one attempt only."""
    relay = relay_for(fake_revyl, fake_secret_manager, lease=7, retry_deadline=20)
    relay.config.routes.pop(1)  # the attached route only: its start is the first call
    fake_revyl.fail_always(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": "1"}))
    answer = deliver(relay, version="1.0", build_number="7")
    assert outcomes(answer) == {"attached": "failed"}
    assert "429" in answer["errors"][0]["message"]
    assert len(fake_revyl.calls_to(EXECUTE_TEST_PATH)) == 1


def test_a_route_whose_build_is_known_does_not_wait_for_another_routes_ingest(
    fake_revyl, fake_secret_manager
):
    # one call at a time, so the order of the calls at Revyl is the order the relay chose
    relay = relay_for(fake_revyl, fake_secret_manager, extra_revyl=", concurrency: 1")
    answer = deliver(relay, version="1.0", build_number="7", files=["app.apk"], platform="android")
    assert answer["decision"] == "triggered"
    assert [e["route"] for e in answer["executions"]] == ["attached", "ingest"]  # plan order
    calls = [(c.path.rsplit("/", 1)[-1], (c.json or {}).get("test_id")) for c in fake_revyl.calls]
    assert calls == [
        ("execute_test_id_async", T1),  # the attached route's build needed no call
        ("from-url", None),
        ("execute_test_id_async", T2),
    ]


def test_dry_run_says_why(fake_revyl, fake_secret_manager):
    relay = relay_for(fake_revyl, fake_secret_manager, extra_revyl=", dry_run: true")
    relay.dry_run = True  # as wiring decides from revyl.dry_run
    answer = deliver(relay, version="1.0", build_number="7", files=["app.apk"], platform="android")
    assert (answer["status"], answer["decision"]) == (200, "dry_run")
    assert answer["reason"] == "revyl.dry_run is true: nothing was started"
    assert outcomes(answer) == {"attached": "planned", "ingest": "planned"}


def test_a_dry_run_fails_what_the_live_relay_would_fail(fake_revyl, fake_secret_manager):
    """No false green: a route whose plan has a problem is answered as the relay with a
    token answers it (here: 422 alone, 502 partial beside a route that would start)."""
    relay = relay_for(fake_revyl, fake_secret_manager)
    live = deliver(relay, version="1.0")  # the ingest route has no artifact
    relay.dry_run = True
    dry = deliver(relay, version="1.0")
    assert (
        (dry["status"], dry["decision"]) == (live["status"], live["decision"]) == (502, "partial")
    )
    assert outcomes(dry) == {"attached": "planned", "ingest": "failed"}
    assert dry["errors"] == live["errors"]
    relay.config.routes.pop(0)
    dry = deliver(relay, version="1.0")
    assert (dry["status"], dry["decision"]) == (422, "failed")
    assert dry["reason"] == "the build has no artifact to ingest"
    assert fake_revyl.calls_to(EXECUTE_TEST_PATH)[0].json["test_id"] == T1  # the live one only
    assert len(fake_revyl.calls) == 1
