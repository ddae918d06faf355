"""`python -m relay check`: is the config right, and what will it do?

It loads the config as the function does, runs the function's own start-up checks against this
shell's environment (an unset `{env: …}` secret stops the relay: check exits 1 too), and warns
of routes that cannot do what they say: a `when:` field or a label field the route's sources
never provide, a build to ingest that Revyl's simulators cannot install.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sized
from fnmatch import fnmatchcase
from pathlib import Path

from relay.cli.common import load, refs_by_secret, table
from relay.config import RelayConfig, Route, SecretRef, source_secret_refs, token_is_set
from relay.errors import ConfigError, RelayError
from relay.reports import build_target
from relay.routing import default_template
from relay.sources import Source, build_source
from relay.sources.slack import SlackSource


class _NoSecrets:
    """Targets are built to describe themselves; none is asked for a secret here."""

    def read(self, ref: SecretRef) -> str:
        raise AssertionError("check builds report targets without reading their secrets")


NO_SECRETS = _NoSecrets()

DEFAULT_LABEL_NOTE = (
    "a route without version_label labels a build `{version} ({build_number})` when it "
    "carries both, else with the one it has"
)


def run(args: argparse.Namespace) -> int:
    path, config = load(args.config)
    sources = {name: build_source(name, s) for name, s in config.sources.items()}
    problems = startup_problems(config, os.environ)
    counts = f"{_count(config.sources, 'source')}, {_count(config.routes, 'route')}"
    verdict = "the relay would refuse to start here" if problems else "valid"
    print(f"{shown_path(path)}: {verdict} ({counts})")
    print()
    print(sources_table(config))
    print()
    print(routes_table(config, sources) if config.routes else "no routes: every build is ignored")
    if config.reports:
        print()
        print(reports_table(config))
    print()
    for line in settings_lines(config, os.environ, sources):
        print(line)
    if problems:
        print(_block("start:", ["the relay refuses to start with this environment:", *problems]))
    if not args.secrets:
        return 1 if problems else 0
    print()
    results = check_secrets(config, os.environ)
    print(table(["SECRET", "USED BY", "STATUS"], [row for row, _ in results]))
    return 1 if problems or not all(ok for _, ok in results) else 0


def startup_problems(config: RelayConfig, environ: Mapping[str, str]) -> list[str]:
    from relay.startup import startup_problems

    return startup_problems(config, environ)


def shown_path(path: Path) -> str:
    """The path as the user would type it: relative to here when it is below here."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _count(items: Sized, noun: str) -> str:
    n = len(items)
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _block(title: str, rows: list[str]) -> str:
    return "\n".join(f"{title if i == 0 else '':<8}{row}" for i, row in enumerate(rows))


def short(uuid: str | None) -> str:
    """The first block of a UUID, as git shortens hashes; `--json` elsewhere shows it whole."""
    return (uuid or "").split("-", 1)[0]


def sources_table(config: RelayConfig) -> str:
    rows = []
    for name, settings in config.sources.items():
        refs = [f"{key}: {ref.describe()}" for key, ref in source_secret_refs(settings)]
        rows.append([name, settings.type, "\n".join(refs), f"/{name}"])
    return table(["SOURCE", "TYPE", "SECRETS", "URL PATH"], rows)


def routes_table(config: RelayConfig, sources: Mapping[str, Source] | None = None) -> str:
    if sources is None:
        sources = {name: build_source(name, s) for name, s in config.sources.items()}
    reporting = any(route.report for route in config.routes)
    rows = []
    for route in config.routes:
        when = dict(route.when.given)
        source = when.pop("source", "*")
        match = " ".join(f"{k}={v}" for k, v in when.items()) or "every build"
        row = [
            route.name,
            source,
            match,
            build_cell(route, route_sources(route, sources)),
            "\n".join(short(t) for t in route.tests),
            "\n".join(short(w) for w in route.workflows),
        ]
        rows.append([*row, "\n".join(route.report)] if reporting else row)
    headings = ["ROUTE", "SOURCE", "MATCH", "BUILD", "TESTS", "WORKFLOWS"]
    return table([*headings, "REPORT"] if reporting else headings, rows)


def reports_table(config: RelayConfig) -> str:
    rows = []
    for name, settings in config.reports.items():
        target = build_target(name, settings, NO_SECRETS)
        refs = [f"{key}: {ref.describe()}" for key, ref in source_secret_refs(settings)]
        users = [route.name for route in config.routes if name in route.report]
        rows.append([name, target.describe(), "\n".join(refs), "\n".join(users) or "-"])
    return table(["REPORT", "TO", "SECRETS", "ROUTES"], rows)


def route_sources(route: Route, sources: Mapping[str, Source]) -> list[Source]:
    """The sources whose webhook builds the route may match (Slack runs routes by name)."""
    wanted = route.when.source or "*"
    return [s for name, s in sources.items() if fnmatchcase(name, wanted) and not chat_ops(s)]


def chat_ops(source: Source) -> bool:
    return isinstance(source, SlackSource)  # wiring registers its commands as a listener


def build_cell(route: Route, sources: list[Source]) -> str:
    spec = route.build
    if spec.mode == "attached":
        return "attached (each test's own build)"
    lines = [f"{spec.mode} app {short(spec.app_id)}"]
    if spec.version_label is not None:
        lines.append(f"label {spec.version_label}")
    else:
        lines.append("label (default)")
        lines += [f"  {s.name}: {default_label_shown(s)}" for s in sources]
    if spec.asset:
        lines.append(f"asset {spec.asset}")
    return "\n".join(lines)


def default_label_shown(source: Source) -> str:
    provides = source.provides()
    template = default_template(provides)
    if template is None:
        return "none (no version, no build_number)"
    both = "version" in provides and "build_number" in provides
    sometimes = provides.get("version") or provides.get("build_number")
    return f"{template} or the one it has" if both and sometimes else template


def settings_lines(
    config: RelayConfig, environ: Mapping[str, str], sources: Mapping[str, Source]
) -> list[str]:
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
    lines += verdict_lines(config)
    lines += [f"note:   {note}" for note in notes(config, sources)]
    lines += [f"warn:   {warning}" for warning in warnings(config, sources)]
    return lines


def verdict_lines(config: RelayConfig) -> list[str]:
    verdicts = config.verdicts
    if verdicts is None:
        return []
    if verdicts.follow == "cloud-tasks" and verdicts.cloud_tasks is not None:
        how = (
            f"on Cloud Tasks queue {verdicts.cloud_tasks.queue}, tasks back to "
            f"{verdicts.cloud_tasks.url} as {verdicts.cloud_tasks.service_account}"
        )
    else:
        how = "in this process (follow: local; a deployment follows on Cloud Tasks)"
    every, give_up = verdicts.poll_seconds, verdicts.give_up_seconds
    lines = [f"follow: verdicts {how}; status every {every:g} s, given up after {give_up:g} s"]
    if not any(route.report for route in config.routes):
        lines.append("note:   no route names `report:` targets: no run is followed")
    unused = [name for name in config.reports if not any(name in r.report for r in config.routes)]
    lines += [f"note:   report target {name!r} is named by no route" for name in unused]
    return lines


def notes(config: RelayConfig, sources: Mapping[str, Source]) -> list[str]:
    found = []
    for name, source in sources.items():
        if chat_ops(source):
            found.append(f"source {name!r} runs routes by name (/revyl run <route>): no `when:`")
            continue
        if not any(source in route_sources(r, sources) for r in config.routes):
            found.append(f"no route takes builds from source {name!r}: they are ignored")
    if any(r.build.mode != "attached" and r.build.version_label is None for r in config.routes):
        found.append(DEFAULT_LABEL_NOTE)
    return found


def warnings(config: RelayConfig, sources: Mapping[str, Source]) -> list[str]:
    """Routes that cannot do what they say, for the builds their sources send."""
    found: list[str] = []
    for route in config.routes:
        found += when_warnings(route, sources)
        found += label_warnings(route, route_sources(route, sources))
        asset = route.build.asset or ""
        if route.build.mode == "ingest" and asset.lower().endswith(".ipa"):
            found.append(f"route {route.name!r}: asset {asset!r} {IPA_WARNING}")
    return found


IPA_WARNING = (
    "picks an iOS device build (.ipa): Revyl runs iOS tests on simulators, which cannot "
    "install one; pick a simulator build (.app, .tar.gz or .zip)"
)


def when_warnings(route: Route, sources: Mapping[str, Source]) -> list[str]:
    """A `when:` field the route's sources never provide (or only some builds carry)."""
    found = []
    candidates = route_sources(route, sources)
    for field in route.when.given:
        if field == "source":
            continue
        key = f"route {route.name!r}: when.{field}"
        if route.when.source is None:  # any source's builds: warn only if none has it
            if candidates and not any(field in s.provides() for s in candidates):
                found.append(f"{key}: no source provides {field}: the route never matches")
            continue
        for source in candidates:
            provides, who = source.provides(), f"source {source.name!r} ({source.type})"
            if field not in provides:
                found.append(f"{key}: {who} never provides {field}: the route never matches")
            elif provides[field]:
                found.append(f"{key}: {who} has {field} only sometimes: {provides[field]}")
    return found


def label_warnings(route: Route, sources: list[Source]) -> list[str]:
    """A label no build of a source can fill: each of its builds would fail 422."""
    spec = route.build
    if spec.mode == "attached":
        return []
    found = []
    for source in sources:
        provides, who = source.provides(), f"source {source.name!r} ({source.type})"
        key = f"route {route.name!r}: build.version_label"
        if spec.version_label is None:
            if default_template(provides) is None:
                found.append(
                    f"{key}: {who} provides no version and no build_number, so there is no "
                    "default label: set version_label to fields it has"
                )
            continue
        missing = sorted(f for f in template_fields(spec.version_label) if f not in provides)
        if missing:
            found.append(
                f"{key} {spec.version_label!r}: {who} never provides {', '.join(missing)}: "
                "each of its builds would fail 422"
            )
    return found


def template_fields(template: str) -> set[str]:
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def check_secrets(config: RelayConfig, environ: Mapping[str, str]) -> list[tuple[list[str], bool]]:
    """Each secret's row and whether it is fine. An unset `{env: …}` Revyl token is not a
    failure: it is how the relay runs in dry-run."""
    from relay.wiring import secrets_for

    reader = secrets_for(config, environ, ttl_seconds=0)
    rows = []
    for ref, used_by in refs_by_secret(config).items():
        if used_by == ["revyl.token"] and dry_run_token(ref, environ):
            status, ok = (
                f"not set: the relay runs in dry-run (export {ref.env} to start runs)",
                True,
            )
        else:
            try:
                value = reader.read(ref)
                ok = bool(value)
                status = "readable" if ok else "empty"
                found = [p for key in used_by if (p := secret_problem(config, key, value))]
                if found:
                    status = "readable, but " + "; ".join(message for message, _ in found)
                    ok = ok and not any(fatal for _, fatal in found)
            except (RelayError, ConfigError) as exc:
                status, ok = (exc.message if isinstance(exc, RelayError) else str(exc)), False
        rows.append(([ref.describe(), "\n".join(used_by), status], ok))
    return rows


def secret_problem(config: RelayConfig, key: str, value: str) -> tuple[str, bool] | None:
    """Why a secret read fine but is wrong where `key` uses it, and whether that is fatal: a
    signing secret too short to be safe is warned of (the relay verifies with it); a report
    target's secret it cannot use (a webhook secret that is not `whsec_`) fails every report."""
    section, name, field = [*key.split(".", 2), "", ""][:3]
    if section == "sources" and field == "secret" and name in config.sources:
        weak = build_source(name, config.sources[name]).secret_problem(value)
        return (weak, False) if weak else None
    if section == "reports" and name in config.reports:
        target = build_target(name, config.reports[name], NO_SECRETS)
        wrong = target.secret_problem(field, value)
        return (wrong, True) if wrong else None
    return None


def dry_run_token(ref: SecretRef, environ: Mapping[str, str]) -> bool:
    return bool(ref.env) and not environ.get(ref.env or "")
