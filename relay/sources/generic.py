"""Any CI that posts JSON signed the Standard Webhooks way (Codemagic, Jenkins, CircleCI, curl).

Headers `webhook-id`, `webhook-timestamp` (within 5 minutes) and `webhook-signature: v1,<base64>`
keyed with a `whsec_` secret. The body names the build directly (see `GenericBuild`, and "The
body" in docs/sources/generic.md); it may be wrapped in the envelope
`{"type": "build.finished", "timestamp": ..., "data": {...}}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from relay.config import UUIDStr, format_validation_error
from relay.errors import BadRequest
from relay.models import Build, Event
from relay.sources.base import Delivery, StandardWebhookSource
from relay.sources.payload import artifact_from_url, json_object, pr_number, read_platform, text

SUCCESS_STATUSES = {"success", "succeeded", "finished", "passed", "completed"}
MAX_TEST_IDS = 50  # entries of `test_ids` one delivery may give: each starts a Revyl run
BUILD_EVENT_TYPES = {"build.finished", "build.completed", "build.succeeded"}


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _artifact_url(value: Any) -> Any:
    return value.get("url") if isinstance(value, dict) else value


def _pr_number(value: Any) -> Any:
    """No PR for 0, "", false or null; what `pr_number` cannot read is left for the model to
    refuse (a 400 naming `pr_number`)."""
    number = pr_number(value)
    if number is None and text(value) not in (None, "0", "#", "false", "null"):
        return value
    return number


def _few_tests(value: Any) -> Any:
    """Refused before each id is read: one signed body must not start thousands of runs."""
    if isinstance(value, list) and len(value) > MAX_TEST_IDS:
        raise ValueError(f"at most {MAX_TEST_IDS} tests per delivery (got {len(value)})")
    return value


def _each_once(test_ids: list[str]) -> list[str]:
    """Each test once, in the order first named: the ids are canonical by now, so `ABC…`,
    `{abc…}` and `urn:uuid:abc…` are one test."""
    return list(dict.fromkeys(test_ids))


def _aliases(*names: str) -> Any:
    return Field(None, validation_alias=AliasChoices(*names))


class GenericBuild(BaseModel):
    """The `generic` body: every field optional, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")

    status: Annotated[str, BeforeValidator(_lower)] = "success"
    platform: Annotated[str | None, BeforeValidator(_lower)] = None
    app: str | None = _aliases("app", "app_id", "bundle_id", "package_name")
    version: str | None = _aliases("version", "app_version", "version_name")
    build_number: str | None = _aliases("build_number", "version_code")
    commit: str | None = _aliases("commit", "commit_sha", "sha")
    branch: str | None = _aliases("branch", "ref")
    pr_number: Annotated[int | None, BeforeValidator(_pr_number)] = _aliases("pr_number", "pr")
    artifact_url: Annotated[str | None, BeforeValidator(_artifact_url)] = _aliases(
        "artifact_url", "artifact"
    )
    build_url: str | None = None
    build_id: str | None = None
    run_id: str | None = None
    repository: str | None = _aliases("repository", "repo")
    workflow: str | None = None
    profile: str | None = None
    system: str | None = _aliases("system", "ci_system", "source")
    build_version_id: UUIDStr | None = None
    test_ids: Annotated[list[UUIDStr], BeforeValidator(_few_tests), AfterValidator(_each_once)] = []


# What a generic body may name (every field is optional)
GENERIC_FIELDS = frozenset(GenericBuild.model_fields) - {"status", "system"} | {"artifacts"}


def read_build(data: dict[str, Any], *, source: str, system: str) -> Build | str:
    """A generic body as a Build, or the reason it is ignored. Raises BadRequest when malformed."""
    for field in ("version", "build_number", "build_id", "run_id"):
        if isinstance(data.get(field), (int, float)) and not isinstance(data.get(field), bool):
            data = {**data, field: str(data[field])}
    try:
        body = GenericBuild.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid build: {format_validation_error(exc)}") from None
    if body.status not in SUCCESS_STATUSES:
        return f"build status {body.status!r} is not a success"
    platform = read_platform(body.platform, "invalid build: platform:")
    fields = body.model_dump(exclude={"status", "system", "test_ids", "platform"})
    return Build(
        source=source,
        system=body.system or system,
        platform=platform,
        test_ids=tuple(body.test_ids),
        artifacts=(artifact_from_url(body.artifact_url),) if body.artifact_url else (),
        **fields,
    )


class GenericSource(StandardWebhookSource):
    type = "generic"
    wiring_hint = "your CI posts Standard Webhooks-signed JSON to {url}"
    sometimes = dict.fromkeys(GENERIC_FIELDS, "only when your CI's body names it")

    def parse(self, delivery: Delivery) -> Event:
        payload = json_object(delivery.body)
        key = f"{self.name}:{delivery.header('webhook-id')}"
        event_type = payload.get("type")
        if isinstance(payload.get("data"), dict) and event_type is not None:
            if not isinstance(event_type, str) or event_type not in BUILD_EVENT_TYPES:
                return Event(key, ignored=f"event type {event_type!r} is not build.finished")
            payload = payload["data"]
        build = read_build(payload, source=self.name, system=self.name)
        if isinstance(build, str):
            return Event(key, ignored=build)
        return Event(key, build=build)
