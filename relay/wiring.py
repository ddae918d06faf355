"""Assembles the relay from the config and the environment: the adapters it talks through,
the listeners and hooks registered on it, the task queue its later work goes to.

What a config does not ask for is not imported (Slack's commands, the verdicts' follower and
targets, Cloud Tasks, Firestore): a cold start loads only what the relay will run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.config import DedupSettings, RelayConfig, token_is_set
from relay.pipeline import Relay
from relay.revyl.client import RequestsRevylClient
from relay.secrets import ENDPOINT_VARIABLE, SecretManagerBackend, Secrets
from relay.startup import check_startup, dry_run_hint, project_id
from relay.stores import EventStore
from relay.stores.journaled import JournaledEventStore
from relay.stores.memory import MemoryEventStore
from relay.tasks import Task, TaskQueue
from relay.tasks.local import LocalTaskQueue

if TYPE_CHECKING:
    from relay.reports.base import ReportTarget
    from relay.stores.checks import CheckStore

log = logging.getLogger("relay")


def secrets_for(
    config: RelayConfig, environ: Mapping[str, str], ttl_seconds: float | None = None
) -> Secrets:
    """The secret reader the relay uses (env variables, Secret Manager through the endpoint
    override if set); `ttl_seconds` 0 reads every secret afresh (the operator tools)."""
    return Secrets(
        SecretManagerBackend(environ.get(ENDPOINT_VARIABLE)),
        project=project_id(config, environ),
        ttl_seconds=config.secrets.ttl_seconds if ttl_seconds is None else ttl_seconds,
        environ=environ,
    )


def build_store(settings: DedupSettings, project: str | None) -> EventStore:
    """The store `dedup:` asks for; Firestore (and its client library) only when asked."""
    if settings.store == "firestore":
        from relay.stores.firestore import FirestoreEventStore

        return JournaledEventStore(FirestoreEventStore(settings, project))
    return MemoryEventStore(settings.lease_seconds)


@dataclass(frozen=True)
class Service:
    """The relay as the HTTP edge serves it: the pipeline, and the task queue its work after
    the answer goes to (whose endpoint the edge serves when tasks come back over HTTP)."""

    relay: Relay
    tasks: TaskQueue
    # a task request coming back over HTTP (Cloud Tasks); None: the edge has no task endpoint
    receive_task: Callable[[Mapping[str, str], bytes], Task] | None = None


def build_relay(config: RelayConfig, environ: Mapping[str, str] = os.environ) -> Relay:
    return build_service(config, environ).relay


def build_service(config: RelayConfig, environ: Mapping[str, str] = os.environ) -> Service:
    check_startup(config, environ)
    project = project_id(config, environ)
    dry_run = not token_is_set(config, environ)
    if dry_run:
        log.warning(
            "dry-run: webhooks are verified and routed but nothing is started: "
            + dry_run_hint(config)
        )
    events = build_store(config.dedup, project)
    relay = Relay(
        config,
        secrets=secrets_for(config, environ),
        revyl=RequestsRevylClient(config.revyl),
        store=events,
        dry_run=dry_run,
    )
    tasks = build_task_queue(config, environ)
    checks = build_check_store(config.dedup, events) if config.verdicts is not None else None
    assemble(relay, tasks, checks)
    return Service(relay, tasks, getattr(tasks, "receive", None))


def assemble(relay: Relay, tasks: TaskQueue, checks: CheckStore | None = None) -> Relay:
    """What a relay does besides routing builds, registered on it as bolt registers listeners
    on its app: each Slack source's slash commands, and (with `verdicts:`) the follower of
    the runs it starts."""
    slack = [name for name, source in relay.sources.items() if source.type == "slack"]
    if slack:
        from relay.chatops import SlashCommands

        for name in slack:
            relay.listen(name, SlashCommands(name, relay, tasks).respond)
    if relay.config.verdicts is not None:
        from relay.reports import build_target
        from relay.stores.checks import MemoryCheckStore
        from relay.verdicts.follower import Follower

        targets = {
            name: build_target(name, settings, relay.secrets)
            for name, settings in relay.config.reports.items()
        }
        targets.update(command_reply_targets(relay))
        follower = Follower(
            relay.config,
            revyl=relay.revyl,
            secrets=relay.secrets,
            checks=checks or MemoryCheckStore(),
            tasks=tasks,
            targets=targets,
        )
        relay.after_start.append(follower.after_start)
    return relay


def command_reply_targets(relay: Relay) -> dict[str, ReportTarget]:
    """Each Slack source's implicit target, `@<source>`: the verdict of a check its commands
    started goes back to the command's channel."""
    from relay.reports.base import origin_target_name
    from relay.reports.slack import SlashCommandReply, SlashCommandReplySettings
    from relay.sources.slack import SlackSource

    targets: dict[str, ReportTarget] = {}
    for name, source in relay.sources.items():
        if isinstance(source, SlackSource):
            slack = source.settings
            settings = SlashCommandReplySettings(
                source=name,
                bot_token=slack.bot_token,
                api_url=slack.api_url,
                response_url_prefix=slack.response_url_prefix,
            )
            target = origin_target_name(name)
            targets[target] = SlashCommandReply(target, settings, relay.secrets)
    return targets


def build_check_store(settings: DedupSettings, events: EventStore) -> CheckStore:
    """Checks live beside the events: Firestore (sharing its client) or this process."""
    from relay.stores.checks import MemoryCheckStore

    shared = events.shared if isinstance(events, JournaledEventStore) else events
    if settings.store == "firestore":
        from relay.stores.firestore import FirestoreEventStore
        from relay.stores.firestore_checks import FirestoreCheckStore

        assert isinstance(shared, FirestoreEventStore)
        return FirestoreCheckStore(settings, shared.client)
    return MemoryCheckStore()


def build_task_queue(config: RelayConfig, environ: Mapping[str, str]) -> TaskQueue:
    """Cloud Tasks with `verdicts: {follow: cloud-tasks}`, else this process's threads."""
    verdicts = config.verdicts
    if verdicts is None or verdicts.follow == "local" or verdicts.cloud_tasks is None:
        return LocalTaskQueue()
    from relay.tasks.cloud import ENDPOINT_VARIABLE as TASKS_ENDPOINT_VARIABLE
    from relay.tasks.cloud import CloudTasksQueue
    from relay.tasks.oidc import CERTS_URL_VARIABLE, GOOGLE_CERTS_URL, OidcVerifier

    cloud = verdicts.cloud_tasks
    verifier = OidcVerifier(
        audience=cloud.url,
        email=cloud.service_account,
        certs_url=environ.get(CERTS_URL_VARIABLE) or GOOGLE_CERTS_URL,
    )
    return CloudTasksQueue(cloud, verifier, endpoint=environ.get(TASKS_ENDPOINT_VARIABLE))
