"""Routing, pure: which routes a build matches, and what each would start.

No I/O here: `plan_event` turns a build and the configured routes into `RoutePlan`s that the
pipeline then carries out against Revyl (or prints, in dry-run and `simulate`).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection
from dataclasses import dataclass
from fnmatch import fnmatchcase

from relay.config import Route
from relay.models import Artifact, Build, target_key

INSTALLABLE_KINDS = {"android": ("apk",), "ios": ("tar.gz", "tgz", "app", "zip", "ipa")}


@dataclass(frozen=True)
class Target:
    """One test or workflow of one route: the unit that is started, recorded and deduplicated."""

    route: str
    test_id: str | None = None
    workflow_id: str | None = None

    @property
    def key(self) -> str:
        return target_key(self.route, self.test_id, self.workflow_id)


@dataclass(frozen=True)
class RoutePlan:
    """What one matched route will do for one build."""

    route: Route
    targets: tuple[Target, ...]
    version_label: str | None = None
    artifact: Artifact | None = None
    problem: str | None = None  # why the route cannot run for this build (nothing is started)

    @property
    def mode(self) -> str:
        return self.route.build.mode

    def describe(self) -> dict[str, object]:
        return {
            "route": self.route.name,
            "build_mode": self.mode,
            "app_id": self.route.build.app_id,
            "version_label": self.version_label,
            "artifact": self.artifact.name if self.artifact else None,
            "tests": [t.test_id for t in self.targets if t.test_id],
            "workflows": [t.workflow_id for t in self.targets if t.workflow_id],
            **({"problem": self.problem} if self.problem else {}),
        }


def route_matches(route: Route, build: Build) -> bool:
    for field, pattern in route.when.given.items():
        value = getattr(build, field)
        if value is None or not fnmatchcase(str(value), pattern):
            return False
    return True


def match_routes(routes: list[Route], build: Build) -> list[Route]:
    return [route for route in routes if route_matches(route, build)]


LinkProblem = Callable[[Build, Artifact], str | None]
"""Why the source could not hand Revyl a link to this artifact (`Source.link_problem`), or None."""


class Unplannable(ValueError):
    """Why a route cannot run for a build: nothing of it is started."""


class MissingFields(Unplannable):
    pass


def default_template(carried: Collection[str]) -> str | None:
    """The label of a route without `version_label`, from the fields a build carries:
    `{version} ({build_number})` with both, else the one there is (a GitHub release has no
    build number, a Bitrise build without its API no version); None with neither."""
    version, number = "version" in carried, "build_number" in carried
    if version and number:
        return "{version} ({build_number})"
    return "{version}" if version else "{build_number}" if number else None


def default_label_template(build: Build) -> str:
    carried = [name for name in ("version", "build_number") if getattr(build, name)]
    template = default_template(carried)
    if template is None:
        raise MissingFields(
            "the build has no version and no build_number, so it has no default label: "
            "set the route's build.version_label to a template of fields it has"
        )
    return template


def render(template: str, build: Build) -> str:
    """Fill a `{field}` template from the build; every field it names must be known."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    missing = [name for name in names if getattr(build, name, None) in (None, "")]
    if missing:
        raise MissingFields(f"the build has no {', '.join(missing)}")
    return template.format_map({name: getattr(build, name) for name in names})


def pick_artifact(build: Build, asset_glob: str | None) -> Artifact | None:
    """The artifact to ingest: the one the `asset` glob names, else the platform's installable."""
    if asset_glob:
        return next((a for a in build.artifacts if fnmatchcase(a.name, asset_glob)), None)
    kinds = INSTALLABLE_KINDS.get(build.platform or "", ())
    preferred = [a for a in build.artifacts if a.kind in kinds]
    candidates = preferred or list(build.artifacts)
    return candidates[0] if candidates else None


def plan_route(
    route: Route,
    build: Build,
    tests: tuple[str, ...] | None = None,
    link_problem: LinkProblem | None = None,
) -> RoutePlan:
    test_ids = tests if tests is not None else tuple(route.tests)
    workflows = () if tests is not None else tuple(route.workflows)
    targets = tuple(Target(route.name, test_id=t) for t in test_ids) + tuple(
        Target(route.name, workflow_id=w) for w in workflows
    )
    targets = tuple(dict.fromkeys(targets))  # a test named twice still starts once
    try:
        label = label_for(route, build, bool(workflows))
        artifact = artifact_for(route, build, link_problem)
    except Unplannable as exc:
        return RoutePlan(route, targets, problem=str(exc))
    return RoutePlan(route, targets, label, artifact)


def label_for(route: Route, build: Build, has_workflows: bool) -> str | None:
    """The version label, when the route needs one: to ingest or look the build up (unless the
    sender named the Revyl build), and to pin it for workflows."""
    spec = route.build
    if spec.mode == "attached":
        return None
    if build.build_version_id and not has_workflows:
        return None
    if has_workflows and not build.platform:
        raise MissingFields("workflows pin the build per platform, and the build has no platform")
    if spec.version_label is None:  # the default: the one the build's fields allow
        return render(default_label_template(build), build)
    try:
        return render(spec.version_label, build)
    except MissingFields as exc:
        raise MissingFields(f"version_label {spec.version_label!r}: {exc}") from None


def artifact_for(
    route: Route, build: Build, link_problem: LinkProblem | None = None
) -> Artifact | None:
    """The artifact to ingest; `link_problem` says, before any I/O, whether the source could
    hand Revyl a link to it (so a dry run fails it as the live relay would)."""
    if route.build.mode != "ingest" or build.build_version_id:
        return None
    artifact = pick_artifact(build, route.build.asset)
    if artifact is None:
        wanted = f"matching {route.build.asset!r}" if route.build.asset else "to ingest"
        raise MissingFields(f"the build has no artifact {wanted}")
    problem = link_problem(build, artifact) if link_problem else None
    if problem:
        raise Unplannable(problem)
    return artifact


def plan_event(
    routes: list[Route],
    build: Build,
    named: tuple[str, ...] = (),
    link_problem: LinkProblem | None = None,
) -> list[RoutePlan]:
    """Plan every route the build matches (or the routes named by the sender).

    A build that names its own `test_ids` runs exactly those, once, under the first matching
    route (for its build settings); the routes' own tests and workflows are not started.
    `link_problem` is the build's source's (`Source.link_problem`).
    """
    chosen = [r for r in routes if r.name in named] if named else match_routes(routes, build)
    if build.test_ids and chosen:
        return [plan_route(chosen[0], build, build.test_ids, link_problem)]
    return [plan_route(route, build, link_problem=link_problem) for route in chosen]
