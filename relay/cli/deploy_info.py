"""`python -m relay deploy-info`: what deploy.sh must create, as tab-separated lines.

    source     NAME  TYPE  WHERE-TO-PASTE-THE-URL
    secret     SECRET-ID  PROJECT  MOUNT-AS  VALUE-FROM  USED-BY
    store      memory|firestore
    firestore  DATABASE  COLLECTION  TTL-FIELD
    verdicts   local|cloud-tasks
    tasks      QUEUE-PATH  SERVICE-ACCOUNT  URL  POLL-SECONDS  GIVE-UP-SECONDS
    lease      SECONDS
    dry-run    yes|no

An empty field is `-` (bash's `read` would merge two tabs). `{secret: NAME}` refs are read by the
relay at run time; `{env: VARIABLE}` refs are stored in Secret Manager under the variable's name
in kebab case and mounted as that variable (MOUNT-AS). VALUE-FROM is the variable deploy.sh
reads a missing secret's value from before it asks for it. `verdicts` comes with a `verdicts:`
section, `tasks` only with `verdicts:
{follow: cloud-tasks}`: the queue, the account the tasks' OIDC tokens are for and the URL they are
sent to, with `poll_seconds` and `give_up_seconds` rounded up to whole seconds (the queue's retry
settings are given in seconds). `dry-run` is decided as the deployed relay decides it, with every
`{env: VARIABLE}` mounted.
"""

from __future__ import annotations

import argparse
import math

from relay.cli.common import load, refs_by_secret
from relay.config import RelayConfig, SecretRef, VerdictSettings, secret_refs, token_is_set
from relay.sources import source_class
from relay.stores.firestore import TTL_FIELD  # each record's expiry: the TTL policy's field


def run(args: argparse.Namespace) -> int:
    _, config = load(args.config)
    for line in info_lines(config):
        print("\t".join(field or "-" for field in line))
    return 0


def info_lines(config: RelayConfig) -> list[list[str]]:
    lines = []
    for name, settings in config.sources.items():
        hint = source_class(settings.type).wiring_hint
        lines.append(["source", name, settings.type, hint])
    for ref, used_by in refs_by_secret(config).items():
        lines.append(["secret", *secret_fields(ref), ",".join(used_by)])
    dedup = config.dedup
    lines.append(["store", dedup.store])
    if dedup.store == "firestore":
        lines.append(["firestore", dedup.database, dedup.collection, TTL_FIELD])
    if config.verdicts is not None:
        lines.append(["verdicts", config.verdicts.follow])
    if config.verdicts is not None and config.verdicts.follow == "cloud-tasks":
        lines.append(["tasks", *tasks_fields(config.verdicts)])
    lines.append(["lease", str(dedup.lease_seconds)])
    deployed = {ref.env: "mounted" for _, ref in secret_refs(config) if ref.env}
    lines.append(["dry-run", "no" if token_is_set(config, deployed) else "yes"])
    return lines


def secret_fields(ref: SecretRef) -> list[str]:
    """Secret id, its project (`` = the deploy's), the variable it is mounted as, and the
    variable a missing value is read from."""
    if ref.env:
        name = ref.env.lower().replace("_", "-")
        return [name, "", ref.env, ref.env]
    assert ref.secret is not None
    project = ""
    name = ref.secret
    if name.startswith("projects/"):
        parts = name.split("/")  # projects/P/secrets/NAME[/versions/V]
        project, name = parts[1], parts[3]
    return [name, project, "", name.upper().replace("-", "_")]


def tasks_fields(verdicts: VerdictSettings) -> list[str]:
    """Queue path, the tasks' service account, their URL, and the poll and give-up seconds."""
    tasks = verdicts.cloud_tasks
    assert tasks is not None  # follow: cloud-tasks requires it
    seconds = (math.ceil(verdicts.poll_seconds), math.ceil(verdicts.give_up_seconds))
    return [tasks.queue, tasks.service_account, tasks.url, *map(str, seconds)]
