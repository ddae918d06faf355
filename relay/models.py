"""The data that flows through the pipeline: one normalized build, and the answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relay.errors import Cause

Platform = Literal["ios", "android"]
Decision = Literal[
    "triggered",
    "ignored",
    "dry_run",
    "partial",
    "failed",
    "duplicate",
    "in_progress",
    "rejected",
    "done",  # a task (work after the answer) brought back by Cloud Tasks has run
]
Outcome = Literal["started", "failed", "unknown", "planned", "skipped"]


class Artifact(BaseModel):
    """One downloadable file of a build (an EAS artifact, a release asset, a CI artifact)."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str | None = None
    kind: str | None = None  # file type: apk, aab, ipa, app, tar.gz, zip...
    ref: str | None = None  # source-specific handle for sources that mint URLs lazily


class Build(BaseModel):
    """A finished build, whatever system built it. Every field a route or template may use."""

    model_config = ConfigDict(frozen=True)

    source: str  # the source key (URL path) the build arrived on
    system: str  # the build system, sent to Revyl as X-CI-System
    platform: Platform | None = None
    app: str | None = None  # bundle id / application id
    version: str | None = None
    build_number: str | None = None
    commit: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    profile: str | None = None
    workflow: str | None = None
    build_id: str | None = None
    build_url: str | None = None
    run_id: str | None = None
    repository: str | None = None
    artifact_url: str | None = None
    build_version_id: str | None = None
    test_ids: tuple[str, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    actor: str | None = None

    def summary(self) -> dict[str, Any]:
        """The build as the response shows it."""
        shown = self.model_dump(exclude={"artifacts", "test_ids", "actor"})
        if self.test_ids:
            shown["test_ids"] = list(self.test_ids)
        return shown


TEMPLATE_FIELDS = frozenset(Build.model_fields) - {"artifacts", "test_ids"}


@dataclass(frozen=True)
class Event:
    """What a source made of one delivery: a build to act on, or the reason to ignore it."""

    key: str
    build: Build | None = None
    ignored: str | None = None
    routes: tuple[str, ...] = ()  # routes named by the sender (chat-ops); empty = match by `when`
    extra: dict[str, Any] = field(default_factory=dict)


class Execution(BaseModel):
    """One target (a test or a workflow of a route) and what became of it."""

    route: str
    test_id: str | None = None
    workflow_id: str | None = None
    execution_id: str | None = None
    status: str | None = None
    report_url: str | None = None
    build_version_id: str | None = None
    outcome: Outcome = "started"
    error: str | None = None
    revyl_status: int | None = None
    # why it failed (not sent: relay.answers turns the causes into the answer's status)
    cause: Cause | None = Field(None, exclude=True)

    @property
    def target(self) -> str:
        return target_key(self.route, self.test_id, self.workflow_id)


def target_key(route: str, test_id: str | None, workflow_id: str | None) -> str:
    """`route/test/<id>` or `route/workflow/<id>`: how a target is named in records and logs."""
    kind, ident = ("test", test_id) if test_id else ("workflow", workflow_id)
    return f"{route}/{kind}/{ident}"


class ErrorItem(BaseModel):
    message: str
    route: str | None = None
    test_id: str | None = None
    workflow_id: str | None = None
    revyl_status: int | None = None


class RelayResponse(BaseModel):
    """The JSON body of every answer, success or not."""

    event: str | None = None
    decision: Decision
    reason: str | None = None
    build: dict[str, Any] | None = None
    execution_ids: list[str] = Field(default_factory=list)
    executions: list[Execution] = Field(default_factory=list)
    errors: list[ErrorItem] = Field(default_factory=list)
    plan: list[dict[str, Any]] | None = None
