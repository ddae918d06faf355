"""Codemagic builds (`type: codemagic`), posted by a `publishing: scripts:` step.

Codemagic has no signed outgoing webhook of its own, so the step in examples/codemagic.yaml
builds the body from Codemagic's variables (`CM_BUILD_ID`, `CM_COMMIT`, `CM_ARTIFACT_LINKS`…)
and signs it the Standard Webhooks way with `openssl`: `webhook-id` (the build id),
`webhook-timestamp` (within 5 minutes) and `webhook-signature: v1,<base64>`.

Codemagic artifact URLs need an `x-auth-token`. With `api.token` set, `artifact_link` asks
Codemagic for a short-lived public URL of the artifact (`POST <artifact>/public-url`) right
before Revyl fetches it, so the Codemagic token never leaves the relay.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from relay.config import SourceSettings
from relay.errors import BadRequest, UnprocessableBuild, UpstreamError
from relay.models import Artifact, Build, Event, Platform
from relay.secrets import SecretReader
from relay.sources._api import ApiSettings, SourceApi
from relay.sources.base import ArtifactLink, Delivery, StandardWebhookSource
from relay.sources.payload import (
    KIND_PLATFORMS,
    artifact_kind,
    as_dict,
    as_list,
    json_object,
    pr_number,
    read_platform,
    text,
)

BUILD_EVENT = "build.finished"
CODEMAGIC_API_HOST = "api.codemagic.io"


class CodemagicApiSettings(ApiSettings):
    url: str = "https://api.codemagic.io"


class CodemagicSettings(SourceSettings):
    api: CodemagicApiSettings = CodemagicApiSettings()
    public_url_ttl: int = Field(900, ge=60, le=7 * 86400)  # seconds a minted artifact link lives


def read_artifact(item: Any) -> Artifact | None:
    """One `CM_ARTIFACT_LINKS` entry: `{name, type, url, md5, versionName, bundleId}`. The file
    type is the downloaded file's (a simulator `Runner.app` arrives as `Runner.app.zip`)."""
    if not isinstance(item, dict):
        return None
    name, url = text(item.get("name")), text(item.get("url"))
    if not name or not url:
        return None
    kind = artifact_kind(url) or artifact_kind(name) or (text(item.get("type")) or "").lower()
    return Artifact(name=name, url=url, kind=kind or None)


def link_platform(item: Any) -> Platform | None:
    """The platform a link is an app for, by its file type or Codemagic's `type`."""
    artifact = read_artifact(item)
    if artifact is None:
        return None
    return KIND_PLATFORMS.get(artifact.kind or "") or KIND_PLATFORMS.get(str(item.get("type")))


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _pr_number(git: dict[str, Any]) -> int | None:
    """`CM_PULL_REQUEST_NUMBER` counts only when `CM_PULL_REQUEST` is true (or not sent)."""
    if "pullRequest" in git and not _flag(git.get("pullRequest")):
        return None
    return pr_number(git.get("pullRequestNumber"))


class CodemagicSource(StandardWebhookSource):
    type = "codemagic"
    wiring_hint = "the publishing script of examples/codemagic.yaml posts to {url}"
    Settings = CodemagicSettings
    settings: CodemagicSettings
    fields = frozenset({"build_number", "commit", "branch", "workflow", "build_id", "run_id"})
    sometimes: ClassVar[Mapping[str, str]] = {
        "platform": "the body's `platform`, or the one platform its artifacts are for",
        "app": "the bundleId of an app artifact in CM_ARTIFACT_LINKS",
        "version": "the versionName of an app artifact in CM_ARTIFACT_LINKS",
        "artifacts": "when CM_ARTIFACT_LINKS lists any",
        "pr_number": "pull request builds only",
        "build_url": "when the script sends buildUrl",
        "repository": "when the script sends git.repoSlug",
    }

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self.api = SourceApi("Codemagic", self.settings.api.url, self.settings.api.timeout)

    # pure steps

    def parse(self, delivery: Delivery) -> Event:
        payload = json_object(delivery.body)
        build_id = text(payload.get("buildId"))
        status = (text(payload.get("status")) or "").lower()
        if not build_id or not status:
            raise BadRequest("Codemagic body needs `buildId` (CM_BUILD_ID) and `status`")
        key = f"{self.name}:{build_id}"
        event_type = text(payload.get("event"))
        if event_type not in (None, BUILD_EVENT):
            return Event(key, ignored=f"event {event_type!r} is not {BUILD_EVENT}")
        if status != "success":
            return Event(key, ignored=f"the build did not succeed (status {status!r})")
        return Event(key, build=self._build(payload, build_id))

    def _build(self, payload: dict[str, Any], build_id: str) -> Build:
        git = as_dict(payload.get("git"))
        links = as_list(payload.get("artifacts"))
        artifacts = tuple(a for a in map(read_artifact, links) if a)
        platforms = {link_platform(item) for item in links} - {None}
        only = platforms.pop() if len(platforms) == 1 else None
        platform = read_platform(payload.get("platform")) or only
        # the entry whose bundleId and versionName describe the build: its platform's app
        main: dict[str, Any] = next(
            (i for i in links if link_platform(i) and platform in (None, link_platform(i))), {}
        )
        return Build(
            source=self.name,
            system="codemagic",
            platform=platform,
            app=text(main.get("bundleId")),
            version=text(main.get("versionName")),
            build_number=text(payload.get("buildNumber")),
            commit=text(git.get("commit")),
            branch=text(git.get("branch")),
            pr_number=_pr_number(git),
            workflow=text(payload.get("workflowId")) or text(payload.get("workflowName")),
            build_id=build_id,
            build_url=text(payload.get("buildUrl")),
            run_id=build_id,
            repository=text(git.get("repoSlug")),
            artifacts=artifacts,
        )

    # I/O: a public link for an artifact, minted right before Revyl downloads it

    def needs_token(self, url: str) -> bool:
        """A Codemagic artifact URL (`/artifacts/<id>/<id>/<file>`), which only answers with
        x-auth-token. Public links Codemagic minted (`/artifacts/.<token>`) and URLs elsewhere
        are handed to Revyl as they are."""
        parts = urlsplit(url)
        hosts = {CODEMAGIC_API_HOST, urlsplit(self.api.base_url).netloc}
        return (
            parts.netloc in hosts
            and parts.path.startswith("/artifacts/")
            and not parts.path.startswith("/artifacts/.")
        )

    def link_problem(self, build: Build, artifact: Artifact) -> str | None:
        if artifact.url and self.needs_token(artifact.url) and self.settings.api.token is None:
            return (
                f"{artifact.name!r} is a Codemagic artifact, which needs x-auth-token: set "
                f"sources.{self.name}.api.token to a Codemagic API token so the relay can "
                "hand Revyl a short-lived public link"
            )
        return None

    def artifact_link(
        self, build: Build, artifact: Artifact, secrets: SecretReader
    ) -> ArtifactLink:
        if not artifact.url or not self.needs_token(artifact.url):
            return super().artifact_link(build, artifact, secrets)
        problem = self.link_problem(build, artifact)
        if problem:
            raise UnprocessableBuild(problem)
        assert self.settings.api.token is not None
        token = secrets.read(self.settings.api.token)
        answer = self.api.request_json(
            "POST",
            urlsplit(artifact.url).path + "/public-url",
            headers={"x-auth-token": token},
            json_body={"expiresAt": int(time.time()) + self.settings.public_url_ttl},
        )
        url = text(answer.get("url")) if isinstance(answer, dict) else None
        if not url:
            raise UpstreamError("the Codemagic API answered without a public URL for the artifact")
        return ArtifactLink(url)
