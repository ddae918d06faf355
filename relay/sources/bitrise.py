"""Bitrise outgoing webhooks (the app's Integrations → Webhooks, or `POST …/outgoing-webhooks`).

A delivery is authenticated one of two ways, chosen per source with `auth:`:
- `signature` (default): `Bitrise-Hook-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body
  keyed with the webhook's secret;
- `bearer`: a static token Bitrise sends as a custom header (`Authorization: Bearer <token>`
  by default, or the bare token in the header `header:` names).

Only `Bitrise-Event-Type: build/finished` with `build_status` 1 is a build. The payload has no
commit and no artifacts: with `api:` set, `enrich` reads the build and its artifact list from the
Bitrise API, and `artifact_link` asks for an artifact's `expiring_download_url` (valid 10 minutes)
right before Revyl ingests it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from relay.config import SecretRef, SourceSettings
from relay.errors import BadRequest, UpstreamError
from relay.models import Artifact, Build, Event
from relay.secrets import SecretReader
from relay.signatures import verify_token
from relay.sources._api import ApiSettings, SourceApi
from relay.sources.base import ArtifactLink, Delivery, HmacSignedSource
from relay.sources.payload import (
    KIND_PLATFORMS,
    artifact_kind,
    as_dict,
    json_object,
    platform_from_words,
    platform_of_artifacts,
    pr_number,
    text,
)

SIGNATURE_HEADER = "Bitrise-Hook-Signature"
EVENT_HEADER = "Bitrise-Event-Type"
FINISHED = "build/finished"
BUILD_PAGE = "https://app.bitrise.io/build/{slug}"
IGNORED_STATUSES = {
    0: "the build has not finished (build_status 0)",
    2: "the build failed (build_status 2)",
    3: "the build failed: aborted with failure (build_status 3)",
    4: "the build was aborted (build_status 4)",
}
# Bitrise's own artifact types, for artifacts whose title has no telling extension.
TYPE_KINDS = {"android-apk": "apk", "android-aab": "aab", "ios-ipa": "ipa"}
ARTIFACT_PAGES = 5
WHAT_TO_SET = (
    "set `secret: {secret: <Secret Manager name>}` (or `{env: VARIABLE}`) to the secret of the "
    "Bitrise outgoing webhook; with `auth: bearer`, to the token Bitrise sends in a custom header"
)
WHAT_THE_API_NEEDS = (
    "set `token: {secret: <Secret Manager name>}`: a Bitrise personal access or workspace API "
    "token the relay reads builds and artifacts with"
)


class BitriseApiSettings(ApiSettings):
    """`api:` of a Bitrise source: the REST API and the token it is read with."""

    url: str = "https://api.bitrise.io"
    token: SecretRef | None = Field(None, validate_default=True)

    @field_validator("token")
    @classmethod
    def _token_given(cls, value: SecretRef | None) -> SecretRef:
        if value is None:
            raise ValueError(WHAT_THE_API_NEEDS)
        return value


class BitriseSettings(SourceSettings):
    auth: Literal["signature", "bearer"] = "signature"
    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]+$")
    api: BitriseApiSettings | None = None

    secret_hint = WHAT_TO_SET


# --- pure steps ---------------------------------------------------------------------


def artifact_path(app_slug: str, build_slug: str, artifact_slug: str | None = None) -> str:
    path = f"/v0.1/apps/{quote(app_slug, safe='')}/builds/{quote(build_slug, safe='')}"
    return path + (f"/artifacts/{quote(artifact_slug, safe='')}" if artifact_slug else "")


def read_artifact(item: dict[str, Any], app_slug: str, build_slug: str) -> Artifact | None:
    """One entry of the artifact list; `ref` is the API path that mints its download link."""
    slug, title = text(item.get("slug")), text(item.get("title"))
    if not slug or not title:
        return None
    kind = artifact_kind(title) or TYPE_KINDS.get(str(item.get("artifact_type")))
    return Artifact(name=title, kind=kind, ref=artifact_path(app_slug, build_slug, slug))


def app_info(item: dict[str, Any]) -> tuple[str | None, str | None]:
    """(bundle id or package name, version) from an installable's `artifact_meta.app_info`.

    These field names are not in Bitrise's public docs: the Android and the iOS spellings are
    both read, and a missing one leaves the build's field empty."""
    meta = item.get("artifact_meta")
    info = meta.get("app_info") if isinstance(meta, dict) else None
    if not isinstance(info, dict):
        return None, None
    app = text(info.get("package_name")) or text(info.get("bundle_id"))
    version = text(info.get("version_name")) or text(info.get("version"))
    return app, version


def enriched_build(
    build: Build, details: dict[str, Any], items: list[dict[str, Any]], app_slug: str
) -> Build:
    """The webhook's build completed with the API's build `details` and artifact list `items`.

    Platform: the workflow name if it says android or ios, else the one platform the
    installable artifacts are for. App id and version: the `app_info` of an installable of
    that platform, when Bitrise gives one."""
    listed = [
        (item, artifact)
        for item in items
        if (artifact := read_artifact(item, app_slug, build.build_id or "")) is not None
    ]
    artifacts = tuple(artifact for _, artifact in listed)
    workflow = text(details.get("triggered_workflow")) or build.workflow
    platform = platform_from_words(workflow) or build.platform or platform_of_artifacts(artifacts)
    installables = [
        app_info(item)
        for item, a in listed
        if platform and KIND_PLATFORMS.get(a.kind or "") == platform
    ]
    app, version = next((info for info in installables if any(info)), (None, None))
    update = {
        "platform": platform,
        "workflow": workflow,
        "commit": text(details.get("commit_hash")) or build.commit,
        "branch": text(details.get("branch")) or build.branch,
        "pr_number": pr_number(details.get("pull_request_id")) or build.pr_number,
        "build_number": text(details.get("build_number")) or build.build_number,
        "app": app or build.app,
        "version": version or build.version,
        "artifacts": artifacts,
    }
    return build.model_copy(update=update)


# --- the source ---------------------------------------------------------------------

API_APP_INFO = "read from an installable's app_info, which Bitrise's public docs do not describe"


class BitriseSource(HmacSignedSource):
    type = "bitrise"
    wiring_hint = (
        "the app's Project settings > Integrations > Webhooks > Outgoing: URL {url}, its "
        "secret, events Build"
    )
    Settings = BitriseSettings
    settings: BitriseSettings
    fields = frozenset({"build_number", "branch", "workflow", "build_id", "run_id", "build_url"})
    sometimes: ClassVar[Mapping[str, str]] = {
        "platform": "read from the workflow's name (with `api:`, also the artifacts' types)",
        "pr_number": "pull request builds only",
    }
    signature_header = SIGNATURE_HEADER
    digest = "sha256"
    prefix = "sha256="
    missing_signature = (
        "missing Bitrise-Hook-Signature header (set a secret on the Bitrise webhook)"
    )

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        api = self.settings.api
        self.api = SourceApi("Bitrise", api.url, api.timeout) if api else None

    def provides(self) -> dict[str, str | None]:
        if self.settings.api is None:
            return super().provides()
        return {
            **super().provides(),
            "commit": None,
            "artifacts": "when the build stored any",
            "app": API_APP_INFO,
            "version": API_APP_INFO,
        }

    def verify(self, delivery: Delivery, secret: str) -> None:
        if self.settings.auth == "bearer":
            header = self.settings.header
            verify_token(delivery.header(header), secret=secret, header=header)
            return
        super().verify(delivery, secret)

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        if self.settings.auth == "bearer":
            header = self.settings.header
            value = f"Bearer {secret}" if header.lower() == "authorization" else secret
            return {EVENT_HEADER: FINISHED, header: value}
        return {EVENT_HEADER: FINISHED, **super().sign(body, secret, now, delivery_id)}

    def parse(self, delivery: Delivery) -> Event:
        payload = json_object(delivery.body)
        slug = text(payload.get("build_slug"))
        if not slug:
            raise BadRequest("Bitrise payload needs `build_slug`")
        event_type = (delivery.header(EVENT_HEADER) or "").strip().lower()
        if not event_type:
            raise BadRequest(f"missing {EVENT_HEADER} header (Bitrise sends {FINISHED})")
        key = f"{self.name}:{slug}:{event_type.rsplit('/', 1)[-1]}"
        if event_type != FINISHED:
            return Event(key, ignored=f"Bitrise event {event_type!r} is not {FINISHED}")
        status = payload.get("build_status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise BadRequest("Bitrise payload needs an integer `build_status`")
        if status != 1:
            reason = IGNORED_STATUSES.get(status, f"build_status {status} is not 1 (success)")
            return Event(key, ignored=reason)
        app_slug = text(payload.get("app_slug"))
        if not app_slug:
            raise BadRequest("Bitrise payload needs `app_slug`")
        return Event(key, build=self._build(payload, slug), extra={"app_slug": app_slug})

    def _build(self, payload: dict[str, Any], slug: str) -> Build:
        git = as_dict(payload.get("git"))
        workflow = text(payload.get("build_triggered_workflow"))
        return Build(
            source=self.name,
            system="bitrise",
            platform=platform_from_words(workflow),
            build_number=text(payload.get("build_number")),
            branch=text(git.get("src_branch")),
            pr_number=pr_number(git.get("pull_request_id")),
            workflow=workflow,
            build_id=slug,
            run_id=slug,
            build_url=BUILD_PAGE.format(slug=quote(slug, safe="")),
        )

    # --- I/O: the Bitrise API -----------------------------------------------------------

    def enrich(self, event: Event, secrets: SecretReader) -> Event:
        build = event.build
        if self.settings.api is None or build is None or not build.build_id:
            return event
        app_slug = str(event.extra["app_slug"])
        path = artifact_path(app_slug, build.build_id)
        details = _data(self._get(path, secrets), dict)
        items = self._artifact_items(path + "/artifacts", secrets)
        enriched = enriched_build(build, details, items, app_slug)
        return dataclasses.replace(event, build=enriched)

    def artifact_link(
        self, build: Build, artifact: Artifact, secrets: SecretReader
    ) -> ArtifactLink:
        if artifact.url or not artifact.ref:
            return super().artifact_link(build, artifact, secrets)
        data = _data(self._get(artifact.ref, secrets), dict)
        url = text(data.get("expiring_download_url"))
        if not url:
            raise UpstreamError(
                f"the Bitrise API gave no expiring_download_url for artifact {artifact.name!r}"
            )
        return ArtifactLink(url)

    def _artifact_items(self, path: str, secrets: SecretReader) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "50"}
        for _ in range(ARTIFACT_PAGES):
            answer = self._get(path, secrets, params)
            items.extend(i for i in _data(answer, list) if isinstance(i, dict))
            paging = answer.get("paging") if isinstance(answer, dict) else None
            following = text(paging.get("next")) if isinstance(paging, dict) else None
            if not following:
                break
            params = {"limit": "50", "next": following}
        return items

    def _get(self, path: str, secrets: SecretReader, params: dict[str, str] | None = None) -> Any:
        settings = self.settings.api
        assert settings is not None
        assert settings.token is not None
        assert self.api is not None
        headers = {"Authorization": secrets.read(settings.token), "Accept": "application/json"}
        return self.api.request_json("GET", path, headers=headers, params=params)


def _data(answer: Any, kind: type) -> Any:
    """The `data` member of a Bitrise answer, checked to be a `kind` (dict or list)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, kind):
        raise UpstreamError("the Bitrise API answered without the expected `data`")
    return data
