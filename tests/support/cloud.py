"""Relays deployed as on Cloud Run with verdicts on Cloud Tasks, all on loopback.

`on_cloud_tasks(start_relay, config_for, env)` starts an OIDC issuer, the fake Cloud Tasks
(every task delivered twice unless told otherwise), a round-robin front end and `instances`
relays behind it, serving `config_for(front_url)` (the config must name the front end as
`cloud_tasks.url`: tasks come back through it, to either instance).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from relay.sandbox.fakes.cloud_tasks import FakeCloudTasks
from relay.sandbox.fakes.oidc import OidcIssuer
from tests.support.front import RoundRobin

TASKS_SA = "relay-tasks@demo.iam.gserviceaccount.com"
QUEUE = "projects/demo/locations/europe-west1/queues/relay-verdicts"


def verdicts_yaml(front_url: str, *, poll_seconds: int = 1, give_up_seconds: int = 60) -> str:
    return (
        "verdicts:\n"
        "  follow: cloud-tasks\n"
        f"  poll_seconds: {poll_seconds}\n"
        f"  give_up_seconds: {give_up_seconds}\n"
        f'  cloud_tasks: {{queue: {QUEUE}, url: "{front_url}", service_account: {TASKS_SA}}}\n'
    )


@dataclass
class CloudDeployment:
    front: RoundRobin
    tasks: FakeCloudTasks
    issuer: OidcIssuer
    instances: list[Any]

    @property
    def url(self) -> str:
        return self.front.url

    def logs(self) -> str:
        return "".join(instance.log_text() for instance in self.instances)


@contextmanager
def on_cloud_tasks(
    start_relay: Callable[..., Any],
    config_for: Callable[[str], str],
    env: dict[str, str],
    *,
    instances: int = 2,
    deliver_twice: int = 1,
) -> Iterator[CloudDeployment]:
    with (
        OidcIssuer() as issuer,
        FakeCloudTasks(issuer, deliver_twice=deliver_twice) as tasks,
        RoundRobin() as front,
    ):
        env = {
            **env,
            "RELAY_CLOUD_TASKS_ENDPOINT": tasks.url,
            "RELAY_OIDC_CERTS_URL": issuer.certs_url,
        }
        text = config_for(front.url)
        relays = [start_relay(text, env=env) for _ in range(instances)]
        front.backends = [relay.url for relay in relays]
        yield CloudDeployment(front, tasks, issuer, relays)


def collection() -> str:
    """A Firestore collection no other test uses."""
    return f"events-{time.monotonic_ns()}"


def wait_until(condition: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)
