"""What every source is: a delivery in, an event out, and the two signing schemes most share.

A source turns one delivery (headers + raw body) into an `Event`: `verify` checks the
sender's signature on the raw bytes, `parse` reads the payload. Both are pure. Sources whose
payloads are thin may `enrich` the build from their system's API, and may mint an artifact's
download link right before Revyl fetches it (`artifact_link`); those are the only I/O steps.
A source never calls the pipeline: what happens to its events is decided where the relay is
assembled (`relay.wiring`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from relay.config import SourceSettings
from relay.errors import BadRequest
from relay.signatures import (
    sign_hex_hmac,
    sign_standard_webhook,
    standard_webhook_key,
    verify_hex_hmac,
    verify_standard_webhook,
)

if TYPE_CHECKING:
    from relay.models import Artifact, Build, Event
    from relay.secrets import SecretReader

# A signature with no timestamp can be tested offline against a captured delivery: a short
# secret falls to brute force, and then anyone can sign anything.
MIN_SECRET_LENGTH = 16


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
    Settings: ClassVar[builtins.type[SourceSettings]] = SourceSettings
    # where the sender is told the relay's URL ({url}): deploy.sh prints it after a deploy
    wiring_hint: ClassVar[str] = "POST its webhooks to {url}"
    # the header naming one delivery (logged with the answer, to find it in the sender's UI)
    delivery_id_header: ClassVar[str | None] = None
    # The Build fields its builds carry besides `source` and `system`: a route's `when:` (or a
    # label's template) on any other field never matches them (`python -m relay check` warns).
    fields: ClassVar[frozenset[str]] = frozenset()
    # Fields some of its builds lack, each with when: a route on one may match none of them.
    sometimes: ClassVar[Mapping[str, str]] = {}

    def __init__(self, name: str, settings: SourceSettings) -> None:
        self.name = name
        self.settings = settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        """Raise `Unauthorized` unless the delivery is signed with `secret`."""
        raise NotImplementedError

    def secret_problem(self, secret: str) -> str | None:
        """Why `secret` is too weak to authenticate deliveries with, or None (for `check`)."""
        if len(secret) < MIN_SECRET_LENGTH:
            return f"shorter than {MIN_SECRET_LENGTH} characters: use a random one of 32 or more"
        return None

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        """The headers this source's sender would put on `body`: the inverse of `verify`.

        Used by `python -m relay send` and the tests; `delivery_id` fills a delivery-id header
        for schemes that have one."""
        raise NotImplementedError

    def parse(self, delivery: Delivery) -> Event:
        """Read a verified delivery. Raise `BadRequest` for a malformed payload."""
        raise NotImplementedError

    def enrich(self, event: Event, secrets: SecretReader) -> Event:
        """Fill what the payload lacks from the build system's API. Default: nothing to add."""
        return event

    def provides(self) -> dict[str, str | None]:
        """Each Build field this source's builds may carry, with its settings (a source whose
        `enrich` reads an `api:` fills more with one): None when every build carries it, else
        when one may lack it."""
        return {**dict.fromkeys(self.fields), **self.sometimes}

    def link_problem(self, build: Build, artifact: Artifact) -> str | None:
        """Why `artifact_link` would refuse this artifact, known without I/O (a credential the
        settings lack), or None. Routing asks at planning time, so a dry run, `simulate` and
        the live relay fail the route alike."""
        return None

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
    digest: ClassVar[str]  # hashlib name: sha1, sha256
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

    delivery_id_header = "webhook-id"

    def secret_problem(self, secret: str) -> str | None:
        """A `whsec_` secret is a base64 key: its decoded bytes are what must be long enough."""
        key = standard_webhook_key(secret)
        if len(key) < MIN_SECRET_LENGTH:
            return (
                f"a key of {len(key)} bytes, under {MIN_SECRET_LENGTH}: use `whsec_` and the "
                "base64 of 24 to 64 random bytes"
            )
        return None

    def verify(self, delivery: Delivery, secret: str) -> None:
        verify_standard_webhook(
            dict(delivery.headers), delivery.body, secret=secret, now=delivery.received_at
        )

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        return sign_standard_webhook(body, secret, now, delivery_id)
