"""App Store Connect webhooks (`POST /v1/webhooks`, event type BUILD_UPLOAD_STATE_UPDATED).

`x-apple-signature: hmacsha256=<hex>` (bare hex accepted too) is HMAC-SHA256 of the raw body
keyed with the secret given when the webhook was created. A `buildUploadStateUpdated` event whose
`newState` is COMPLETE is a finished build; pings and other states are answered 200 and ignored.

The payload holds only ids. With `api:` (an App Store Connect API key: issuer id, key id and the
`.p8` private key) `enrich` signs an ES256 JWT and reads the build upload, then its build with the
pre-release version and the app, for version, build number, platform and bundle id. Apple's
documentation does not say whether the upload always names its build, so when it does not (or the
upload is unknown) the webhook's id is tried as a build id, which one public client assumes.
App Store Connect never hands out a binary a simulator can run: routes use `lookup` or attached
builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pydantic import model_validator

from relay.config import SecretRef, SourceSettings
from relay.errors import BadRequest, Unavailable, UpstreamError
from relay.jsontext import read_json
from relay.logs import never_show
from relay.models import Build, Event
from relay.secrets import SecretReader
from relay.sources._api import ApiSettings, SourceApi
from relay.sources.base import Delivery, HmacSignedSource
from relay.sources.payload import as_dict, as_list, json_object, text

SIGNATURE_HEADER = "x-apple-signature"
BUILD_UPLOAD_EVENT = "buildUploadStateUpdated"
AUDIENCE = "appstoreconnect-v1"
TOKEN_LIFETIME = 15 * 60  # Apple refuses tokens that live longer than 20 minutes
TOKEN_RENEW_BEFORE = 60
PLATFORMS = {"IOS": "ios"}
IGNORED_STATES = {
    "PROCESSING": "the build upload is still processing (newState PROCESSING)",
    "FAILED": "App Store Connect could not process the build upload (newState FAILED)",
}
WHAT_TO_SET = (
    "set `secret: {secret: <Secret Manager name>}` (or `{env: VARIABLE}`) to the secret given "
    "when the App Store Connect webhook was created"
)


class AscApiSettings(ApiSettings):
    """`api:` of an App Store Connect source: an API key, each part a value or a SecretRef."""

    url: str = "https://api.appstoreconnect.apple.com"
    issuer_id: str | SecretRef
    key_id: str | SecretRef
    private_key: SecretRef

    @model_validator(mode="after")
    def _no_token(self) -> AscApiSettings:
        if self.token is not None:
            raise ValueError(
                "App Store Connect is called with an API key (issuer_id, key_id, private_key), "
                "not `token`"
            )
        return self


class AscSettings(SourceSettings):
    api: AscApiSettings | None = None

    secret_hint = WHAT_TO_SET


# --- pure steps ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AscBuild:
    """What App Store Connect says about an upload: every field may be missing."""

    build_id: str | None = None
    version: str | None = None
    build_number: str | None = None
    platform: str | None = None  # Apple's spelling: IOS, MAC_OS, TV_OS, VISION_OS
    bundle_id: str | None = None


def is_ping(data: dict[str, Any]) -> bool:
    attributes = as_dict(data.get("attributes"))
    return "ping" in str(data.get("type", "")).lower() or attributes.get("ping") is True


def related_id(document: dict[str, Any] | None, name: str) -> str | None:
    """`data.relationships.<name>.data.id` of a JSON:API document (present when included)."""
    data = document.get("data") if isinstance(document, dict) else None
    relationships = data.get("relationships") if isinstance(data, dict) else None
    related = relationships.get(name) if isinstance(relationships, dict) else None
    linkage = related.get("data") if isinstance(related, dict) else None
    return text(linkage.get("id")) if isinstance(linkage, dict) else None


def attributes(document: dict[str, Any] | None) -> dict[str, Any]:
    data = document.get("data") if isinstance(document, dict) else None
    found = data.get("attributes") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def included(document: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """Attributes of the first included resource of type `kind`."""
    for item in as_list(as_dict(document).get("included")):
        if isinstance(item, dict) and item.get("type") == kind:
            found = item.get("attributes")
            return found if isinstance(found, dict) else {}
    return {}


def read_asc_build(upload: dict[str, Any] | None, build: dict[str, Any] | None) -> AscBuild:
    """Merge a `buildUploads` document and a `builds?include=preReleaseVersion,app` document."""
    up = attributes(upload)
    version_info = included(build, "preReleaseVersions")
    build_data = build.get("data") if isinstance(build, dict) else None
    return AscBuild(
        build_id=text(build_data.get("id")) if isinstance(build_data, dict) else None,
        version=text(up.get("cfBundleShortVersionString")) or text(version_info.get("version")),
        build_number=text(up.get("cfBundleVersion")) or text(attributes(build).get("version")),
        platform=text(up.get("platform")) or text(version_info.get("platform")),
        bundle_id=text(included(build, "apps").get("bundleId")),
    )


def pem_key(value: str) -> str:
    """A `.p8` key as stored: real newlines, or `\\n` escapes from a one-line paste."""
    key = value.strip()
    return key.replace("\\n", "\n") if "\n" not in key else key


def mint_token(issuer_id: str, key_id: str, private_key: str, now: float) -> str:
    """An App Store Connect API token: ES256 JWT, `kid` header, audience appstoreconnect-v1."""
    import jwt  # imported here so a cold start without App Store Connect does not load it

    claims = {"iss": issuer_id, "iat": int(now), "exp": int(now) + TOKEN_LIFETIME, "aud": AUDIENCE}
    return jwt.encode(claims, pem_key(private_key), algorithm="ES256", headers={"kid": key_id})


class TokenCache:
    """Reuses a token until shortly before it expires; a new key (rotation) mints a new one."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, str, float] | None = None  # (key fingerprint, token, expiry)

    def token(self, issuer_id: str, key_id: str, private_key: str) -> str:
        fingerprint = hashlib.sha256(f"{issuer_id}\0{key_id}\0{private_key}".encode()).hexdigest()
        with self._lock:
            now = self.clock()
            cached = self._cached
            if cached and cached[0] == fingerprint and now < cached[2] - TOKEN_RENEW_BEFORE:
                return cached[1]
            token = mint_token(issuer_id, key_id, private_key, now)
            never_show(token)  # a bearer credential for 15 minutes: masked like any secret
            self._cached = (fingerprint, token, now + TOKEN_LIFETIME)
            return token


# --- I/O: the App Store Connect API ----------------------------------------------------


class NotFound(UpstreamError):
    """404 from App Store Connect: the caller may try the other reading of the id."""


class AscApi(SourceApi):
    """SourceApi that reads Apple's JSON:API error bodies and tells 404 apart."""

    def decipher(self, status: int, body: bytes) -> Any:
        if 400 <= status < 500 and status != 429:
            error = NotFound if status == 404 else UpstreamError
            raise error(f"the App Store Connect API refused ({status}): {apple_message(body)}")
        return super().decipher(status, body)


def apple_message(body: bytes) -> str:
    try:
        errors = read_json(body).get("errors")
        first = errors[0]
        return str(first.get("detail") or first.get("title") or first.get("code"))[:200]
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return body.decode("utf-8", "replace").strip()[:200] or "no message"


class AppStoreConnectSource(HmacSignedSource):
    type = "app-store-connect"
    wiring_hint = (
        "App Store Connect Users and Access > Integrations > Webhooks: Payload URL {url}, "
        "its secret, event Build Upload State"
    )
    Settings = AscSettings
    settings: AscSettings
    fields = frozenset({"build_id", "run_id"})  # the payload holds only ids

    def provides(self) -> dict[str, str | None]:
        if self.settings.api is None:
            return super().provides()
        read = dict.fromkeys(("platform", "app", "version", "build_number"), None)
        return {**super().provides(), **read}

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self.tokens = TokenCache()
        api = self.settings.api
        self.api = AscApi("App Store Connect", api.url, api.timeout) if api else None

    signature_header = SIGNATURE_HEADER
    digest = "sha256"
    prefix = "hmacsha256="
    missing_signature = f"missing {SIGNATURE_HEADER} header"

    def parse(self, delivery: Delivery) -> Event:
        data = json_object(delivery.body).get("data")
        if not isinstance(data, dict):
            raise BadRequest("App Store Connect payload needs a `data` object")
        event_id = text(data.get("id"))
        if is_ping(data):
            return Event(f"{self.name}:{event_id or 'ping'}", ignored="App Store Connect ping")
        if not event_id:
            raise BadRequest("App Store Connect payload needs `data.id`")
        key = f"{self.name}:{event_id}"
        event_type = text(data.get("type"))
        if event_type != BUILD_UPLOAD_EVENT:
            return Event(key, ignored=f"event type {event_type!r} is not {BUILD_UPLOAD_EVENT}")
        attrs = as_dict(data.get("attributes"))
        state = text(attrs.get("newState")) or text(attrs.get("newValue"))
        if state != "COMPLETE":
            reason = IGNORED_STATES.get(
                state or "", f"build upload state {state!r} is not COMPLETE"
            )
            return Event(key, ignored=reason)
        upload_id = related_id({"data": data}, "instance")
        if not upload_id:
            raise BadRequest("App Store Connect payload needs data.relationships.instance.data.id")
        build = Build(
            source=self.name, system="app-store-connect", build_id=upload_id, run_id=upload_id
        )
        return Event(key, build=build, extra={"build_upload": upload_id})

    def enrich(self, event: Event, secrets: SecretReader) -> Event:
        if self.settings.api is None or event.build is None:
            return event
        upload_id = str(event.extra["build_upload"])
        found = self.read_upload(upload_id, self._headers(secrets))
        platform = PLATFORMS.get(found.platform) if found.platform else None
        if found.platform and platform is None:
            ignored = f"the build is for {found.platform}, not iOS"
            return dataclasses.replace(event, build=None, ignored=ignored)
        build = event.build.model_copy(
            update={
                "platform": platform,
                "app": found.bundle_id,
                "version": found.version,
                "build_number": found.build_number,
                "build_id": found.build_id or upload_id,
            }
        )
        return dataclasses.replace(event, build=build)

    def read_upload(self, upload_id: str, headers: dict[str, str]) -> AscBuild:
        """The upload (with its build linkage), then the build with its version and app."""
        upload = self._get_optional(
            f"/v1/buildUploads/{quote(upload_id, safe='')}", "build", headers
        )
        build_id = related_id(upload, "build") or upload_id
        build = self._get_optional(
            f"/v1/builds/{quote(build_id, safe='')}", "preReleaseVersion,app", headers
        )
        if upload is None and build is None:
            raise UpstreamError(
                f"the App Store Connect API knows no build upload or build {upload_id!r} (404)"
            )
        return read_asc_build(upload, build)

    def _get_optional(
        self, path: str, include: str, headers: dict[str, str]
    ) -> dict[str, Any] | None:
        assert self.api is not None
        try:
            answer = self.api.request_json(
                "GET", path, headers=headers, params={"include": include}
            )
        except NotFound:
            return None
        return answer if isinstance(answer, dict) else None

    def _headers(self, secrets: SecretReader) -> dict[str, str]:
        api = self.settings.api
        assert api is not None
        issuer_id, key_id = (
            secrets.read(value) if isinstance(value, SecretRef) else value
            for value in (api.issuer_id, api.key_id)
        )
        private_key = secrets.read(api.private_key)
        try:
            token = self.tokens.token(issuer_id, key_id, private_key)
        except Exception as exc:  # PyJWT / cryptography refusing the key: an operator must fix it
            raise Unavailable(
                f"cannot sign an App Store Connect token: sources.{self.name}.api.private_key "
                f"({api.private_key.describe()}) is not a .p8 EC private key "
                f"({type(exc).__name__})"
            ) from None
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}
