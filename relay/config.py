"""The configuration file (YAML), validated by pydantic at start-up.

A bad file fails fast with a message naming the key and the problem, for example
`routes.0.tests.1: not a UUID: 'smoke'`.
"""

from __future__ import annotations

import difflib
import os
import re
import string
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, get_args
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
from relay.models import TEMPLATE_FIELDS, Platform

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "relay.yaml"


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` is most likely a misspelling of, if one is close enough."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key(key: str, valid: Iterable[str]) -> str:
    """`profil` → "unknown key `profil`: did you mean `profile`? (valid keys: ...)"."""
    valid = list(valid)
    guess = nearest(key, valid)
    hint = f": did you mean `{guess}`?" if guess else ""
    return f"unknown key `{key}`{hint} (valid keys: {', '.join(valid)})"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        """An unknown key names the valid ones and the nearest (pydantic would only say
        "Extra inputs are not permitted")."""
        if isinstance(data, Mapping):
            for key in data:
                if str(key) not in cls.model_fields:
                    raise ValueError(unknown_key(str(key), cls.model_fields))
        return data


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"not a UUID: {value!r}") from None


UUIDStr = Annotated[str, AfterValidator(_uuid)]


REFERENCE_SYNTAX = (
    "a secret is never written in the config: write `{secret: NAME}` (Secret Manager) or "
    "`{env: NAME}` (an environment variable)"
)


class SecretRef(Strict):
    """Where a secret lives: Secret Manager (`{secret: name}`) or an environment variable."""

    secret: str | None = None
    env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_reference(cls, data: Any) -> Any:
        # never echo the value: a plain string here is likely the secret itself
        if not isinstance(data, Mapping | SecretRef):
            raise ValueError(REFERENCE_SYNTAX)
        return data

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


PLATFORMS: tuple[str, ...] = get_args(Platform)


def _platform(value: str | None) -> str | None:
    """`Android` → `android`; a value (or glob) no platform matches is a mistake, not a route
    that silently matches nothing."""
    if value is None:
        return None
    pattern = value.strip().lower()
    if any(fnmatchcase(platform, pattern) for platform in PLATFORMS):
        return pattern
    guess = nearest(pattern, PLATFORMS)
    hint = f": did you mean {guess!r}?" if guess else ""
    raise ValueError(f"{value!r} is not a platform{hint} (platforms: {', '.join(PLATFORMS)})")


class Match(Strict):
    """`when:` of a route. Every given field must match the build; values are globs."""

    source: str | None = None
    platform: Annotated[str | None, AfterValidator(_platform)] = None
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
    # None: the default, built from what the build carries (routing.default_label)
    version_label: Annotated[str, AfterValidator(_template)] | None = None
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
    report: list[str] = []  # names from `reports:`: where this route's verdicts go

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


class ReportSettings(Strict):
    """What every report target has; a target type extends it (`Settings` of its module)."""

    type: str


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
    reports: dict[str, ReportSettings] = {}

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

    @field_validator("reports")
    @classmethod
    def _report_names(cls, reports: dict[str, ReportSettings]) -> dict[str, ReportSettings]:
        reserved = sorted(name for name in reports if name.startswith("@"))
        if reserved:
            raise ValueError(
                f"report names {reserved}: names starting with '@' are the relay's own (the "
                "replies to chat commands, `@<slack source>`)"
            )
        return reports

    @model_validator(mode="after")
    def _reports_known(self) -> RelayConfig:
        for route in self.routes:
            unknown = [name for name in route.report if name not in self.reports]
            if unknown:
                known = ", ".join(sorted(self.reports)) or "none"
                raise ValueError(
                    f"route {route.name!r}: report {unknown} names no report target "
                    f"(reports: {known})"
                )
            if route.report and self.verdicts is None:
                raise ValueError(
                    f"route {route.name!r} reports verdicts, but the config has no `verdicts:` "
                    "section: add `verdicts: {}` (followed in this process) or `verdicts: "
                    "{follow: cloud-tasks, cloud_tasks: {...}}` (a deployment)"
                )
        return self

    @model_validator(mode="after")
    def _tasks_share_the_checks(self) -> RelayConfig:
        cloud = self.verdicts is not None and self.verdicts.follow == "cloud-tasks"
        if cloud and self.dedup.store != "firestore":
            raise ValueError(
                "verdicts.follow cloud-tasks needs dedup.store firestore: a task may reach any "
                "instance, and every instance must see the checks it follows"
            )
        return self

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

    The schema imports no plugin (sources, report targets): whoever loads a config passes the
    registry in (`relay.plugins`), so a plugin may import the schema's base classes freely."""

    source: Callable[[str], type[SourceSettings]]
    report: Callable[[str], type[ReportSettings]]


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
            raise ValueError(format_validation_error(exc, (kind, name))) from None
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
    return fnmatchcase(value, pattern)


YAML_TYPES = {
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true/false",
    list: "a list",
}


def format_validation_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One `dotted.key: problem` line per error; `prefix` is where the model sits."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in (*prefix, *error["loc"])) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] in ("model_type", "dict_type"):  # not a class name: what to write
            given = YAML_TYPES.get(
                type(error["input"]), "nothing" if error["input"] is None else "a value"
            )
            message = f"expected a mapping (`key: value` lines or `{{key: value}}`), got {given}"
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def yaml_problem(exc: yaml.YAMLError, origin: str) -> str:
    """`relay.yaml:3:8: not valid YAML: ...`: the file, not PyYAML's `<unicode string>`."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return f"{origin}: not valid YAML: {str(exc).replace('<unicode string>', origin)}"
    context = getattr(exc, "context", None)
    where = f"{origin}:{mark.line + 1}:{mark.column + 1}"
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def parse_config(text: str, origin: str = "config", *, models: PluginModels) -> RelayConfig:
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loaders only
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(exc, origin)) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: the top level must be a mapping with `sources` and `routes`")
    try:
        if isinstance(data.get("sources"), Mapping):
            data = {**data, "sources": typed_plugins(data["sources"], models.source, "sources")}
        if isinstance(data.get("reports"), Mapping):
            data = {**data, "reports": typed_plugins(data["reports"], models.report, "reports")}
        return RelayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {format_validation_error(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("RELAY_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(
    path: Path | None, *, models: PluginModels, environ: Mapping[str, str] = os.environ
) -> RelayConfig:
    """`path`, else the file RELAY_CONFIG names, else the bundled relay.yaml."""
    named_by = "" if path or not environ.get("RELAY_CONFIG") else " (named by RELAY_CONFIG)"
    path = path or config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}{named_by}: {exc.strerror}") from None
    return parse_config(text, origin=str(path), models=models)


def missing_environment(config: RelayConfig, environ: Mapping[str, str]) -> list[str]:
    """Secrets given as `{env: NAME}` whose variable is unset, empty or only whitespace (an
    empty signing secret would let anyone sign): the relay refuses to start. (An unset Revyl
    token is not among them: that is dry-run.)"""
    return [
        f"{key}: set the environment variable {ref.env}"
        for key, ref in secret_refs(config)
        if ref.env and not environ.get(ref.env, "").strip() and key != "revyl.token"
    ]


def source_secret_refs(source: BaseModel) -> list[tuple[str, SecretRef]]:
    """Every SecretRef of a source's (or a report target's) settings, with its dotted key."""
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
    `reports.ci-hook.secret`, `revyl.token`); a ref named by several keys appears once per key."""
    refs = [
        (f"{section}.{name}.{key}", ref)
        for section, plugins in (("sources", config.sources), ("reports", config.reports))
        for name, settings in plugins.items()
        for key, ref in source_secret_refs(settings)
    ]
    if config.revyl.token:
        refs.append(("revyl.token", config.revyl.token))
    return refs
