"""The configuration file (YAML), validated by pydantic at start-up.

A bad file fails fast with a message naming the key and the problem, for example
`routes.0.tests.1: not a UUID: 'smoke'`.
"""

from __future__ import annotations

import os
import re
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from relay.errors import ConfigError
from relay.models import TEMPLATE_FIELDS

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "relay.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"not a UUID: {value!r}") from None


UUIDStr = Annotated[str, AfterValidator(_uuid)]


class SecretRef(Strict):
    """Where a secret lives: Secret Manager (`{secret: name}`) or an environment variable."""

    secret: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.secret is None) == (self.env is None):
            raise ValueError("give exactly one of `secret` (Secret Manager) or `env` (variable)")
        return self

    def describe(self) -> str:
        return f"secret {self.secret}" if self.secret else f"env {self.env}"


class RevylSettings(Strict):
    api_url: str = "https://backend.revyl.ai"
    app_url: str = "https://app.revyl.ai"
    token: SecretRef | None = None
    dry_run: bool = False
    concurrency: int = Field(8, ge=1, le=256)
    client_name: str = "revyl-relay"
    connect_timeout: float = Field(5.0, gt=0)
    request_timeout: float = Field(30.0, gt=0)
    ingest_timeout: float = Field(420.0, gt=0)  # from-url: Revyl downloads the artifact first
    retry_deadline: float = Field(20.0, ge=0)
    # An execute call that may have reached Revyl (timeout, reset, 500/502/504) is reported
    # `unknown`. true: the next delivery starts it again (never lose a run, at the risk of a
    # second one); false: never start it again (never run twice, at the risk of none).
    retry_unknown: bool = True

    @field_validator("api_url", "app_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def call_seconds(self) -> float:
        """The most one Revyl call (other than an ingest) lasts on the wall clock: connect,
        send and the whole answer (relay.revyl.client bounds each call so)."""
        return self.connect_timeout + self.request_timeout


AUTHENTICATION_HINT = (
    "Field required: every source is authenticated, so set it to the webhook's "
    "signing secret, `{secret: <Secret Manager name>}` or `{env: <VARIABLE>}`"
)


class SourceSettings(Strict):
    """What every source has; a source type may extend it (`Settings` of its module)."""

    type: str
    secret: SecretRef = Field(None, validate_default=True)  # None is refused by _secret_given
    # what a config without `secret` is told (a source type may say where its secret comes from)
    secret_hint: ClassVar[str] = AUTHENTICATION_HINT

    @field_validator("secret", mode="before")
    @classmethod
    def _secret_given(cls, value: Any) -> Any:
        if value is None:
            raise ValueError(cls.secret_hint)
        return value


class Match(Strict):
    """`when:` of a route. Every given field must match the build; values are globs."""

    source: str | None = None
    platform: str | None = None
    app: str | None = None
    profile: str | None = None
    branch: str | None = None
    workflow: str | None = None
    repository: str | None = None
    version: str | None = None

    @cached_property
    def given(self) -> Mapping[str, str]:
        """The fields set, computed once (every webhook matches every route against them).
        Read-only: it is shared by every caller, so a caller's edit would change routing."""
        return MappingProxyType({k: v for k, v in self.model_dump().items() if v is not None})


class AppRef(Strict):
    app_id: UUIDStr


def _template(value: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad template {value!r}: {exc}") from None
    unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
    if unknown or "" in names:
        raise ValueError(
            f"template {value!r} uses unknown fields {unknown or ['{}']}; "
            f"known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    return value


class BuildSpec(Strict):
    """How a route finds the Revyl build: ingest the artifact, look the label up, or neither."""

    ingest: AppRef | None = None
    lookup: AppRef | None = None
    version_label: Annotated[str, AfterValidator(_template)] = "{version} ({build_number})"
    asset: str | None = None  # glob picking one artifact/asset by file name

    @model_validator(mode="after")
    def _one_mode(self) -> BuildSpec:
        if self.ingest and self.lookup:
            raise ValueError("give `ingest` or `lookup`, not both")
        return self

    @property
    def mode(self) -> Literal["ingest", "lookup", "attached"]:
        return "ingest" if self.ingest else "lookup" if self.lookup else "attached"

    @property
    def app_id(self) -> str | None:
        ref = self.ingest or self.lookup
        return ref.app_id if ref else None


class Route(Strict):
    name: str = Field(min_length=1)
    when: Match = Match()
    build: BuildSpec = BuildSpec()
    tests: list[UUIDStr] = []
    workflows: list[UUIDStr] = []

    @model_validator(mode="after")
    def _has_targets(self) -> Route:
        if not self.tests and not self.workflows:
            raise ValueError(f"route {self.name!r} names no `tests` and no `workflows`")
        return self


class DedupSettings(Strict):
    store: Literal["memory", "firestore"] = "memory"
    collection: str = "relay-events"
    database: str = "(default)"
    ttl_days: int = Field(30, ge=1)
    lease_seconds: int = Field(540, ge=1)  # keep equal to the function timeout (deploy.sh)


RECORD_SECONDS = 5.0
"""Time kept at the end of a lease to record a start: the Firestore store bounds each write
to its 4 s retry budget (relay.stores.firestore.RETRY_BUDGET)."""


class SecretsSettings(Strict):
    ttl_seconds: float = Field(600, ge=0)
    project: str | None = None  # default: GOOGLE_CLOUD_PROJECT


QUEUE_PATH = re.compile(r"projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]+")


class CloudTasksSettings(Strict):
    """`verdicts.cloud_tasks`: the queue status checks are scheduled on, and how tasks come
    back: POSTed to `url` with an OIDC token for `service_account` (audience: `url`)."""

    queue: str
    url: str
    service_account: str

    @field_validator("queue")
    @classmethod
    def _queue_path(cls, value: str) -> str:
        if not QUEUE_PATH.fullmatch(value):
            raise ValueError(f"not a queue path projects/P/locations/L/queues/Q: {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(f"must be an https URL (http only for loopback): {value!r}")
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"must be the function's base URL: {value!r}")
        return value.rstrip("/")

    @field_validator("service_account")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value or value.strip() != value:
            raise ValueError(f"not a service account e-mail: {value!r}")
        return value


class VerdictSettings(Strict):
    """`verdicts:` follow every run the relay starts to its verdict and report it."""

    follow: Literal["local", "cloud-tasks"] = "local"
    poll_seconds: float = Field(20, ge=1)
    give_up_seconds: float = Field(5400, gt=0)
    cloud_tasks: CloudTasksSettings | None = None

    @model_validator(mode="after")
    def _driver_settings(self) -> VerdictSettings:
        if self.follow == "cloud-tasks" and self.cloud_tasks is None:
            raise ValueError(
                "follow: cloud-tasks needs `cloud_tasks: {queue, url, service_account}`"
            )
        if self.give_up_seconds < self.poll_seconds:
            raise ValueError("give_up_seconds must be at least poll_seconds")
        return self


class RelayConfig(Strict):
    revyl: RevylSettings = RevylSettings()
    sources: dict[str, SourceSettings]
    routes: list[Route] = []
    dedup: DedupSettings = DedupSettings()
    secrets: SecretsSettings = SecretsSettings()
    verdicts: VerdictSettings | None = None

    @field_validator("sources")
    @classmethod
    def _names_are_paths(cls, sources: dict[str, SourceSettings]) -> dict[str, SourceSettings]:
        for name in sources:
            if not name or "/" in name or name == "healthz":
                raise ValueError(f"source name {name!r} cannot be a URL path segment")
        return sources

    @model_validator(mode="after")
    def _routes_consistent(self) -> RelayConfig:
        names = [route.name for route in self.routes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"route names must be unique: {duplicated}")
        for route in self.routes:
            wanted = route.when.source
            if wanted and not any(_glob_matches(wanted, s) for s in self.sources):
                raise ValueError(f"route {route.name!r}: when.source {wanted!r} names no source")
        return self

    @property
    def lease_margin(self) -> float:
        """How long before a claim's lease ends a delivery stops starting targets: a start
        begun before then has its answer (`revyl.call_seconds`) and is recorded in the store
        (RECORD_SECONDS) before the lease ends and another delivery may take the event over."""
        return self.revyl.call_seconds + RECORD_SECONDS

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self) -> RelayConfig:
        if self.dedup.lease_seconds <= self.lease_margin:
            raise ValueError(
                f"dedup.lease_seconds ({self.dedup.lease_seconds}) must exceed "
                f"revyl.connect_timeout + revyl.request_timeout + {RECORD_SECONDS:g} s to "
                f"record a start ({self.lease_margin:g})"
            )
        return self

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


@dataclass(frozen=True)
class PluginModels:
    """The settings model of each plugin type a config may name (`sources.<name>.type`).

    The schema imports no plugin: whoever loads a config passes the registry in
    (`relay.plugins`), so a plugin may import the schema's base classes freely."""

    source: Callable[[str], type[SourceSettings]]


def typed_plugins(
    raw: Mapping[str, Any], model_for: Callable[[str], type[Strict]], kind: str
) -> dict[str, Any]:
    """Validate each entry (a source) with its type's own settings model (`type` defaults to
    the key). Errors keep their path: `sources.<name>.<key>: <problem>`."""
    typed: dict[str, Any] = {}
    for name, settings in raw.items():
        try:
            typed[name] = _typed(name, settings, model_for, kind)
        except ValidationError as exc:
            prefixed = format_validation_error(exc).replace("\n", f"\n{kind}.{name}.")
            raise ValueError(f"{kind}.{name}.{prefixed}") from None
        except ValueError as exc:
            raise ValueError(f"{kind}.{name}: {exc}") from None
    return typed


def _typed(name: str, settings: Any, model_for: Callable[[str], type[Strict]], kind: str) -> Strict:
    if isinstance(settings, Strict):
        return settings
    if not isinstance(settings, Mapping):
        raise ValueError("must be a mapping")
    settings = {"type": name, **settings}
    return model_for(str(settings["type"])).model_validate(settings)


def _glob_matches(pattern: str, value: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(value, pattern)


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def parse_config(text: str, origin: str = "config", *, models: PluginModels) -> RelayConfig:
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loaders only
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: the top level must be a mapping with `sources` and `routes`")
    try:
        if isinstance(data.get("sources"), Mapping):
            data = {**data, "sources": typed_plugins(data["sources"], models.source, "sources")}
        return RelayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {format_validation_error(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("RELAY_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: Path | None, *, models: PluginModels) -> RelayConfig:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return parse_config(text, origin=str(path), models=models)


def missing_environment(config: RelayConfig, environ: Mapping[str, str]) -> list[str]:
    """Secrets given as `{env: NAME}` whose variable is unset, empty or only whitespace (an
    empty signing secret would let anyone sign): the relay refuses to start."""
    missing = []
    for name, source in config.sources.items():
        for key, ref in source_secret_refs(source):
            if ref.env and not environ.get(ref.env, "").strip():
                missing.append(f"sources.{name}.{key}: set the environment variable {ref.env}")
    return missing


def source_secret_refs(source: SourceSettings) -> list[tuple[str, SecretRef]]:
    """Every SecretRef of a source's settings, with its dotted key (for checks and messages)."""
    found: list[tuple[str, SecretRef]] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for field_name in type(model).model_fields:
            value = getattr(model, field_name)
            if isinstance(value, SecretRef):
                found.append((prefix + field_name, value))
            elif isinstance(value, BaseModel):
                walk(value, f"{prefix}{field_name}.")

    walk(source, "")
    return found


def token_is_set(config: RelayConfig, environ: Mapping[str, str]) -> bool:
    """False means dry-run: no token configured, or an `{env: NAME}` token that is unset."""
    token = config.revyl.token
    if config.revyl.dry_run or token is None:
        return False
    return bool(token.secret) or bool(environ.get(token.env or ""))


def secret_refs(config: RelayConfig) -> list[tuple[str, SecretRef]]:
    """Every SecretRef the config names, with its dotted key (`sources.eas.secret`,
    `revyl.token`); a ref named by several keys appears once per key."""
    refs = [
        (f"sources.{name}.{key}", ref)
        for name, source in config.sources.items()
        for key, ref in source_secret_refs(source)
    ]
    if config.revyl.token:
        refs.append(("revyl.token", config.revyl.token))
    return refs
