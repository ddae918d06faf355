"""Build systems, one module each behind one small interface.

A source turns one delivery (headers + raw body) into an `Event`: `verify` checks the
sender's signature on the raw bytes, `parse` reads the payload. Both are pure. Sources whose
payloads are thin may `enrich` the build from their system's API, and may mint an artifact's
download link right before Revyl fetches it (`artifact_link`); those are the only I/O steps.

Adding a build system = one module here named after its `type` (dashes become underscores)
holding a `Source` subclass whose `type` is that name (with its own `Settings` if it needs
more than a signing secret), plus its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from relay.config import SourceSettings
from relay.errors import BadRequest
from relay.signatures import (
    sign_hex_hmac,
    sign_standard_webhook,
    verify_hex_hmac,
    verify_standard_webhook,
)

if TYPE_CHECKING:
    from relay.models import Artifact, Build, Event, Platform
    from relay.pipeline import Answer, Relay
    from relay.secrets import SecretReader


@dataclass(frozen=True)
class Delivery:
    """One webhook request as sent: lower-cased headers, the raw body, when it came."""

    headers: Mapping[str, str]
    body: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class ArtifactLink:
    """A URL Revyl can fetch, with the headers (if any) it must send."""

    url: str
    headers: Mapping[str, str] | None = None


class Source:
    """One configured source (`sources.<name>` in the config)."""

    type: ClassVar[str]
    Settings: ClassVar[type[SourceSettings]] = SourceSettings

    def __init__(self, name: str, settings: SourceSettings) -> None:
        self.name = name
        self.settings = settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        """Raise `Unauthorized` unless the delivery is signed with `secret`."""
        raise NotImplementedError

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        """The headers this source's sender would put on `body`: the inverse of `verify`.

        Used by `python -m relay send` and the tests; `delivery_id` fills a delivery-id header
        for schemes that have one."""
        raise NotImplementedError

    def parse(self, delivery: Delivery) -> Event:
        """Read a verified delivery. Raise `BadRequest` for a malformed payload."""
        raise NotImplementedError

    def respond(self, event: Event, relay: Relay) -> Answer | None:
        """Answer the delivery in a source's own way (chat-ops commands); None: the usual path."""
        return None

    def enrich(self, event: Event, secrets: SecretReader) -> Event:
        """Fill what the payload lacks from the build system's API. Default: nothing to add."""
        return event

    def artifact_link(
        self, build: Build, artifact: Artifact, secrets: SecretReader
    ) -> ArtifactLink:
        """The link Revyl downloads `artifact` from. Default: the URL the payload gave."""
        if not artifact.url:
            raise BadRequest(f"artifact {artifact.name!r} has no download URL")
        return ArtifactLink(artifact.url)


class HmacSignedSource(Source):
    """A sender that puts `<prefix><hex HMAC of the raw body>` in one header (EAS, GitHub,
    Bitrise, App Store Connect): the subclass names the header, digest and prefix."""

    signature_header: ClassVar[str]
    digest: ClassVar[Callable[[], Any]]
    prefix: ClassVar[str]
    missing_signature: ClassVar[str]  # what to tell a sender whose delivery has no signature

    def verify(self, delivery: Delivery, secret: str) -> None:
        verify_hex_hmac(
            delivery.header(self.signature_header),
            secret=secret,
            message=delivery.body,
            digest=self.digest,
            prefixes=(self.prefix,),
            missing=self.missing_signature,
        )

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        return {self.signature_header: sign_hex_hmac(secret, body, self.digest, self.prefix)}


class StandardWebhookSource(Source):
    """A sender that signs the Standard Webhooks way (generic, Codemagic's publishing step)."""

    def verify(self, delivery: Delivery, secret: str) -> None:
        verify_standard_webhook(
            dict(delivery.headers), delivery.body, secret=secret, now=delivery.received_at
        )

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        return sign_standard_webhook(body, secret, now, delivery_id)


def module_name(source_type: str) -> str:
    return source_type.replace("-", "_")


def known_types() -> list[str]:
    modules = pkgutil.iter_modules(__path__)
    return sorted(m.name.replace("_", "-") for m in modules if not m.name.startswith("_"))


def source_class(source_type: str) -> type[Source]:
    if (
        not source_type.replace("-", "").replace("_", "").isalnum()
        or source_type not in known_types()
    ):
        raise ValueError(f"unknown source type {source_type!r}; known: {', '.join(known_types())}")
    module = importlib.import_module(f"{__name__}.{module_name(source_type)}")
    for candidate in vars(module).values():
        is_source = isinstance(candidate, type) and issubclass(candidate, Source)
        if is_source and getattr(candidate, "type", None) == source_type:
            return candidate
    raise ValueError(f"module {module.__name__} defines no Source with type {source_type!r}")


def settings_model(source_type: str) -> type[SourceSettings]:
    return source_class(source_type).Settings


def build_source(name: str, settings: SourceSettings) -> Source:
    return source_class(settings.type)(name, settings)


def text(value: Any) -> str | None:
    """A payload value as a non-empty string, or None (numbers become strings)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    result = str(value).strip()
    return result or None


def as_list(value: Any) -> list[Any]:
    """A payload value to iterate: itself if it is a list, else empty (a signed payload may
    still have an odd shape; it must not become a 500)."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """A payload value to read keys from: itself if it is an object, else empty."""
    return value if isinstance(value, dict) else {}


def pr_number(value: Any) -> int | None:
    """A pull request number from `412`, `"412"` or `"#412"`; None for 0, null, "" and
    anything else that is not a positive whole number (CIs send those for non-PR builds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    digits = value.strip().lstrip("#") if isinstance(value, str) else ""
    return int(digits) if digits.isascii() and digits.isdigit() and int(digits) > 0 else None


def read_platform(value: Any, what: str = "platform") -> Platform | None:
    """A payload's platform, lower-cased: `ios`, `android` or None (not given); anything else
    is a BadRequest whose message starts with `what`."""
    name = (text(value) or "").lower() or None
    if name not in (None, "ios", "android"):
        raise BadRequest(f"{what} {name!r} is neither ios nor android")
    return cast("Platform | None", name)


def artifact_kind(name: str) -> str | None:
    lowered = name.lower().split("?", 1)[0]
    for suffix in (".tar.gz", ".apk", ".aab", ".ipa", ".app", ".zip", ".tgz"):
        if lowered.endswith(suffix):
            return suffix[1:]
    return None


KIND_PLATFORMS = {"apk": "android", "aab": "android", "ipa": "ios", "app": "ios", "tar.gz": "ios"}


def platform_of_artifacts(artifacts: Iterable[Artifact]) -> str | None:
    """The one platform the artifacts' file types say (`.apk` android, `.ipa` ios), else None.
    A `.zip` says nothing: it may hold a simulator `.app` or be a CI's wrapper around anything."""
    found = {KIND_PLATFORMS[a.kind] for a in artifacts if a.kind in KIND_PLATFORMS}
    return found.pop() if len(found) == 1 else None


def platform_from_words(*names: str | None) -> str | None:
    """`Build Android preview` → android, `ios_release.yml` → ios; None if neither or both."""
    words: set[str] = set()
    for name in names:
        words |= set(re.split(r"[^a-z0-9]+", (name or "").lower()))
    found = {p for p in ("ios", "android") if p in words}
    return found.pop() if len(found) == 1 else None


def artifact_from_url(url: str, name: str | None = None) -> Artifact:
    from relay.models import Artifact

    name = name or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return Artifact(name=name, url=url, kind=artifact_kind(name))


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body, or raise BadRequest saying what is wrong."""
    import json

    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data
