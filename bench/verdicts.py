"""The benchmark's verdicts phase: what following runs on Cloud Tasks costs a webhook.

Two relays served as in production, both on the Firestore emulator (`follow: cloud-tasks`
needs a shared store): `off` without `verdicts:`, `on` with its route reporting to a webhook,
its tasks on the loopback fake of Cloud Tasks (driven by the real client) dispatched back to
it with OIDC tokens. Interleaved one-test webhooks to each give the latency the enqueue adds
on the webhook's path; once every check has its verdict, the counts per run: task operations,
Revyl status calls, messages delivered.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.client import Connection, post
from bench.processes import Served
from bench.webhooks import Deliveries, profile, test_ids
from relay.sandbox.fakes.cloud_tasks import FakeCloudTasks
from relay.sandbox.fakes.oidc import OidcIssuer
from relay.sandbox.fakes.webhook_receiver import WebhookReceiver
from relay.sandbox.net import free_port
from tests.fakes.firestore_emulator import FirestoreEmulator

HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TASKS_SA = "relay-tasks@demo.iam.gserviceaccount.com"
QUEUE = "projects/demo/locations/europe-west1/queues/bench-verdicts"
POLL_SECONDS = 1


def config(revyl_url: str, front_url: str, receiver_url: str, *, verdicts: bool) -> str:
    """One route, `fan-1`, one test; with `verdicts` the route reports to a webhook."""
    text = (
        f"revyl: {{api_url: {revyl_url}, token: {{secret: revyl-api-key}}}}\n"
        "sources:\n  eas: {secret: {secret: eas-webhook-secret}}\n"
        f"dedup: {{store: firestore, collection: bench-{uuid.uuid4().hex[:8]}}}\n"
        "routes:\n"
        f"  - name: fan-1\n    when: {{source: eas, profile: {profile(1)}}}\n"
        f"    tests: [{test_ids(1)[0]}]\n"
    )
    if not verdicts:
        return text
    return text + (
        "    report: [hook]\n"
        f"verdicts:\n  follow: cloud-tasks\n  poll_seconds: {POLL_SECONDS}\n"
        "  give_up_seconds: 120\n"
        f"  cloud_tasks: {{queue: {QUEUE}, url: '{front_url}', service_account: {TASKS_SA}}}\n"
        f"reports:\n  hook: {{type: webhook, url: '{receiver_url}/v', secret: {{env: HOOK}}}}\n"
    )


class VerdictsPhase:
    def __init__(
        self,
        *,
        revyl_url: str,
        revyl_stats: Callable[[], dict[str, int]],
        served: Callable[[str, dict[str, str]], Served],
        base_env: dict[str, str],
        workdir: Path,
        webhooks: int,
        latency: float,
    ) -> None:
        self.revyl_url = revyl_url
        self.revyl_stats = revyl_stats
        self.served = served
        self.base_env = base_env
        self.workdir = workdir
        self.webhooks = webhooks
        self.latency = latency
        self.deliveries = Deliveries()
        self.sent = 0

    def run(self) -> dict[str, Any]:
        with (
            FirestoreEmulator() as emulator,
            OidcIssuer() as issuer,
            FakeCloudTasks(issuer, paused=True) as tasks,
            WebhookReceiver(secret=HOOK_SECRET) as receiver,
        ):
            env = {
                **self.base_env,
                **emulator.env(),
                "HOOK": HOOK_SECRET,
                "RELAY_CLOUD_TASKS_ENDPOINT": tasks.url,
                "RELAY_OIDC_CERTS_URL": issuer.certs_url,
            }
            relays = self.start_relays(env, receiver.url)
            try:
                # tasks are created on the webhook's path, but run only after the timing: their
                # dispatch (in this process) would share the timing client's CPU
                latencies = self.latencies(relays)
                tasks.resume()
                counts = self.counts(tasks, receiver)
            finally:
                for relay in relays.values():
                    relay.stop()
        return {**latencies, **counts}

    def start_relays(self, env: dict[str, str], receiver_url: str) -> dict[str, Served]:
        relays: dict[str, Served] = {}
        for name, on in (("off", False), ("on", True)):
            path = self.workdir / f"relay-verdicts-{name}.yaml"
            placeholder = "http://127.0.0.1:9"  # the relay's own URL, known once it listens
            path.write_text(config(self.revyl_url, placeholder, receiver_url, verdicts=on))
            served = self.served(f"relay-verdicts-{name}", {**env, "RELAY_CONFIG": str(path)})
            if on:  # tasks come back to this very relay: its port is chosen before it starts
                served.port = free_port()
                text = config(self.revyl_url, served.url, receiver_url, verdicts=True)
                path.write_text(text)
            served.spawn()
            served.first_answer("/eas", self.deliveries.next(1))
            self.sent += 1
            relays[name] = served
        return relays

    def latencies(self, relays: dict[str, Served]) -> dict[str, Any]:
        conns = {name: Connection(relay.url) for name, relay in relays.items()}
        samples: dict[str, list[float]] = {name: [] for name in relays}
        try:
            for conn in conns.values():  # warm
                for _ in range(3):
                    post(conn, "/eas", self.deliveries.next(1))
                    self.sent += 1
            for _ in range(self.webhooks):  # interleaved: the same noise on both
                for name, conn in conns.items():
                    status, _, elapsed = post(conn, "/eas", self.deliveries.next(1))
                    self.sent += 1
                    if status != 200:
                        raise RuntimeError(f"relay {name} answered {status}")
                    samples[name].append(elapsed - self.latency)
        finally:
            for conn in conns.values():
                conn.close()
        p50 = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        return {
            "webhooks": self.webhooks,
            "off_p50_ms": round(p50["off"], 2),
            "on_p50_ms": round(p50["on"], 2),
            "added_p50_ms": round(p50["on"] - p50["off"], 2),
        }

    def counts(self, tasks: FakeCloudTasks, receiver: WebhookReceiver) -> dict[str, Any]:
        """Once every check has its verdict: per run (one test per check), the task
        operations and Revyl status calls, and the messages delivered per check."""
        checks = self.webhooks + 4  # the timed ones, the warm-up ones and the first
        deadline = time.monotonic() + 120
        while len(receiver.messages()) < 2 * checks and time.monotonic() < deadline:
            time.sleep(0.2)
        tasks.wait_idle(30)
        counted = tasks.counts()
        stats = self.revyl_stats()
        return {
            "checks": checks,
            "messages_delivered": len(receiver.messages()),
            "tasks_created_per_run": round(counted["created"] / checks, 2),
            "task_dispatches_per_run": round(counted["attempts"] / checks, 2),
            "revyl_status_calls_per_run": round(stats.get("status", 0) / checks, 2),
            "poll_seconds": POLL_SECONDS,
        }
