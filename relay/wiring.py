"""Assembles a `Relay` from the config and the environment: the adapters it talks through."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from relay.chatops import SlashCommands
from relay.config import DedupSettings, RelayConfig, missing_environment, secret_refs, token_is_set
from relay.errors import ConfigError
from relay.pipeline import Relay
from relay.revyl.client import RequestsRevylClient
from relay.secrets import ENDPOINT_VARIABLE, SecretManagerBackend, Secrets
from relay.sources.slack import SlackSource
from relay.stores import EventStore
from relay.stores.journaled import JournaledEventStore
from relay.stores.memory import MemoryEventStore
from relay.tasks import TaskQueue
from relay.tasks.local import LocalTaskQueue

log = logging.getLogger("relay")


def project_id(config: RelayConfig, environ: Mapping[str, str]) -> str | None:
    return (
        config.secrets.project or environ.get("GOOGLE_CLOUD_PROJECT") or environ.get("GCP_PROJECT")
    )


def check_startup(config: RelayConfig, environ: Mapping[str, str]) -> None:
    """What can be checked without I/O: env secrets set, a project for Secret Manager names."""
    problems = startup_problems(config, environ)
    if problems:
        raise ConfigError("the relay cannot start:\n" + "\n".join(problems))


def startup_problems(config: RelayConfig, environ: Mapping[str, str]) -> list[str]:
    """Why the relay would refuse to start with this environment (`check` runs this too)."""
    problems = missing_environment(config, environ)
    if not project_id(config, environ):
        names = {ref.secret for _, ref in secret_refs(config) if ref.secret}
        short = sorted(name for name in names if not name.startswith("projects/"))
        if short:
            problems.append(
                f"secrets {short} are Secret Manager short names: set GOOGLE_CLOUD_PROJECT"
            )
        if config.dedup.store == "firestore":
            problems.append("dedup.store firestore needs a project: set GOOGLE_CLOUD_PROJECT")
    return problems


def dry_run_hint(config: RelayConfig) -> str:
    """Why the relay runs dry, and what would make it start runs (`token_is_set` is false)."""
    token = config.revyl.token
    if config.revyl.dry_run:
        return "revyl.dry_run is true (remove it to start runs)"
    if token is None:
        return "the config has no revyl.token (set it, e.g. `token: {env: REVYL_API_KEY}`)"
    return f"revyl.token is {{env: {token.env}}} and {token.env} is not set (export it)"


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


def build_relay(config: RelayConfig, environ: Mapping[str, str] = os.environ) -> Relay:
    check_startup(config, environ)
    project = project_id(config, environ)
    dry_run = not token_is_set(config, environ)
    if dry_run:
        log.warning(
            "dry-run: webhooks are verified and routed but nothing is started: "
            + dry_run_hint(config)
        )
    relay = Relay(
        config,
        secrets=secrets_for(config, environ),
        revyl=RequestsRevylClient(config.revyl),
        store=build_store(config.dedup, project),
        dry_run=dry_run,
    )
    return assemble(relay, LocalTaskQueue())


def assemble(relay: Relay, tasks: TaskQueue) -> Relay:
    """What a relay does besides routing builds, registered on it as bolt registers listeners
    on its app: each Slack source's slash commands."""
    for name, source in relay.sources.items():
        if isinstance(source, SlackSource):
            relay.listen(name, SlashCommands(name, relay, tasks).respond)
    return relay
