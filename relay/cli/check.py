"""`python -m relay check`: is the config right, and what will it do?"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sized
from pathlib import Path

from relay.cli.common import load, refs_by_secret, table
from relay.config import RelayConfig, Route, source_secret_refs, token_is_set
from relay.errors import ConfigError, RelayError
from relay.sources import build_source


def run(args: argparse.Namespace) -> int:
    path, config = load(args.config)
    for name, settings in config.sources.items():
        build_source(name, settings)  # every type resolves to a module
    counts = f"{_count(config.sources, 'source')}, {_count(config.routes, 'route')}"
    print(f"{shown_path(path)}: valid ({counts})")
    print()
    print(sources_table(config))
    print()
    print(routes_table(config) if config.routes else "no routes: every build is ignored")
    print()
    for line in settings_lines(config, os.environ):
        print(line)
    if not args.secrets:
        return 0
    print()
    results = check_secrets(config, os.environ)
    print(table(["SECRET", "USED BY", "STATUS"], results))
    return 0 if all(status == "readable" for _, _, status in results) else 1


def shown_path(path: Path) -> str:
    """The path as the user would type it: relative to here when it is below here."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _count(items: Sized, noun: str) -> str:
    n = len(items)
    return f"{n} {noun}{'' if n == 1 else 's'}"


def short(uuid: str | None) -> str:
    """The first block of a UUID, as git shortens hashes; `--json` elsewhere shows it whole."""
    return (uuid or "").split("-", 1)[0]


def sources_table(config: RelayConfig) -> str:
    rows = []
    for name, settings in config.sources.items():
        refs = [f"{key}: {ref.describe()}" for key, ref in source_secret_refs(settings)]
        rows.append([name, settings.type, "\n".join(refs), f"/{name}"])
    return table(["SOURCE", "TYPE", "SECRETS", "URL PATH"], rows)


def routes_table(config: RelayConfig) -> str:
    rows = []
    for route in config.routes:
        when = dict(route.when.given)
        source = when.pop("source", "*")
        match = " ".join(f"{k}={v}" for k, v in when.items()) or "every build"
        rows.append(
            [
                route.name,
                source,
                match,
                build_cell(route),
                "\n".join(short(t) for t in route.tests),
                "\n".join(short(w) for w in route.workflows),
            ]
        )
    return table(["ROUTE", "SOURCE", "MATCH", "BUILD", "TESTS", "WORKFLOWS"], rows)


def build_cell(route: Route) -> str:
    spec = route.build
    if spec.mode == "attached":
        return "attached (each test's own build)"
    lines = [f"{spec.mode} app {short(spec.app_id)}", f"label {spec.version_label}"]
    if spec.asset:
        lines.append(f"asset {spec.asset}")
    return "\n".join(lines)


def settings_lines(config: RelayConfig, environ: Mapping[str, str]) -> list[str]:
    revyl = config.revyl
    token = revyl.token
    if token_is_set(config, environ):  # as the relay decides whether it runs dry
        assert token is not None
        access = f"token from {token.describe()}"
    elif revyl.dry_run:
        access = "dry_run is on: webhooks are verified and routed, nothing is started"
    elif token is None:
        access = "no token: dry-run, nothing is started"
    else:
        access = f"token from env {token.env} (not set in this shell: dry-run here)"
    lines = [f"revyl:  {revyl.api_url}, {access}"]
    dedup = config.dedup
    if dedup.store == "firestore":
        lines.append(
            f"dedup:  firestore, database {dedup.database}, collection {dedup.collection}, "
            f"records kept {dedup.ttl_days} days, lease {dedup.lease_seconds} s"
        )
    else:
        lines.append("dedup:  memory (one instance; a deployment wants store: firestore)")
    lines += [f"note:   {note}" for note in notes(config)]
    return lines


def notes(config: RelayConfig) -> list[str]:
    from fnmatch import fnmatchcase

    found = []
    for name in config.sources:
        takes = [r for r in config.routes if fnmatchcase(name, r.when.source or "*")]
        if not takes:
            found.append(f"no route takes builds from source {name!r}: they are ignored")
    return found


def check_secrets(config: RelayConfig, environ: Mapping[str, str]) -> list[list[str]]:
    from relay.wiring import secrets_for

    reader = secrets_for(config, environ, ttl_seconds=0)
    rows = []
    for ref, used_by in refs_by_secret(config).items():
        try:
            status = "readable" if reader.read(ref) else "empty"
        except (RelayError, ConfigError) as exc:
            status = exc.message if isinstance(exc, RelayError) else str(exc)
        rows.append([ref.describe(), "\n".join(used_by), status])
    return rows
