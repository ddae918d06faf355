"""GitHub webhooks (`type: github`): releases, workflow runs and repository dispatches.

`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, checked on the raw body
whether the hook sends JSON or form-encoded `payload=<json>`. The signature has no timestamp
and covers no header, so the event key comes from the signed body (`event_key`), never from
`X-GitHub-Delivery`: a captured body resent under a GUID of the sender's choosing is still the
same event. The GUID is logged with the answer. GitHub never redelivers on its own.

- `release` (published): the assets are the build's artifacts, the version is the tag. A public
  repository's asset goes to Revyl as its `browser_download_url`. A private one is minted right
  before Revyl fetches it: the API asset URL with `Accept: application/octet-stream` and the
  token answers 302 to a short-lived signed URL, which is all Revyl gets. Only if GitHub serves
  the asset itself (200) does Revyl get the API URL with the token as from-url headers.
- `workflow_run` (completed, success): commit, branch, pull request and run. Its artifacts are
  listed only with `workflow_artifacts: true`; each is minted into GitHub's one-minute download
  URL right before Revyl fetches it, so that token never leaves the relay.
- `repository_dispatch`: `client_payload` is read as the `generic` body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote

from pydantic import ValidationInfo, field_validator

from relay.config import SourceSettings
from relay.errors import BadRequest, UnprocessableBuild, UpstreamError
from relay.models import Artifact, Build, Event
from relay.secrets import SecretReader
from relay.sources._api import ApiSettings, SourceApi
from relay.sources.base import ArtifactLink, Delivery, HmacSignedSource
from relay.sources.generic import GENERIC_FIELDS, read_build
from relay.sources.payload import (
    artifact_kind,
    as_dict,
    as_list,
    json_object,
    platform_from_words,
    platform_of_artifacts,
    pr_number,
    text,
)

SHA = re.compile(r"[0-9a-f]{40}")
RELEASE_ASSET = "release-asset:"
RUN_ARTIFACT = "run-artifact:"
NOT_HANDLED = (
    "GitHub event {!r} is not acted on: subscribe the hook to Workflow runs, Releases "
    "or Repository dispatches"
)


class GitHubApiSettings(ApiSettings):
    url: str = "https://api.github.com"


class GitHubSettings(SourceSettings):
    api: GitHubApiSettings = GitHubApiSettings()
    workflow_artifacts: bool = False  # list a successful run's artifacts for `ingest` routes
    dispatch_types: tuple[str, ...] = ("*",)  # globs of the repository_dispatch types to read

    @field_validator("workflow_artifacts")
    @classmethod
    def _artifacts_need_a_token(cls, wanted: bool, info: ValidationInfo) -> bool:
        api = info.data.get("api")
        if wanted and api is not None and api.token is None:
            raise ValueError(
                "needs api.token: GitHub serves workflow artifacts only to a token that can "
                "read Actions (`actions: read`)"
            )
        return wanted


def read_payload(delivery: Delivery) -> dict[str, Any]:
    """The event JSON, from a JSON body or a form-encoded `payload=` one."""
    content_type = (delivery.header("content-type") or "").lower()
    if content_type.startswith("application/x-www-form-urlencoded") or (
        not content_type.startswith("application/json") and delivery.body.startswith(b"payload=")
    ):
        try:
            form = parse_qs(delivery.body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("form-encoded body is malformed") from None
        if len(form.get("payload", [])) != 1:
            raise BadRequest("form-encoded body needs exactly one `payload` field")
        return json_object(form["payload"][0].encode())
    return json_object(delivery.body)


def event_key(event_name: str, payload: dict[str, Any]) -> str:
    """What identifies the event, read from the signed payload: a release by its id and action;
    a workflow run by its id, `run_attempt` (a re-run is a new event) and action; any other
    event (a repository_dispatch has no id of its own) by the digest of its payload."""
    action = text(payload.get("action")) or ""
    if event_name == "release":
        release_id = text(as_dict(payload.get("release")).get("id"))
        if release_id:
            return f"release:{release_id}:{action}"
    if event_name == "workflow_run":
        run = as_dict(payload.get("workflow_run"))
        run_id, attempt = text(run.get("id")), text(run.get("run_attempt")) or "1"
        if run_id:
            return f"workflow_run:{run_id}:{attempt}:{action}"
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{event_name}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def guess_event(body: bytes) -> str:
    """The `X-GitHub-Event` GitHub would send with this body (for `sign`)."""
    payload = read_payload(Delivery({}, body, 0.0))
    for key, event in (
        ("workflow_run", "workflow_run"),
        ("release", "release"),
        ("client_payload", "repository_dispatch"),
        ("zen", "ping"),
    ):
        if key in payload:
            return event
    raise BadRequest("cannot tell which GitHub event this body is")


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"GitHub payload has no `{key}` object")
    return value


def _login(payload: dict[str, Any], key: str = "sender") -> str | None:
    who = payload.get(key)
    return text(who.get("login")) if isinstance(who, dict) else None


def _repository(payload: dict[str, Any]) -> dict[str, Any]:
    return as_dict(payload.get("repository"))


def _pr_number(run: dict[str, Any]) -> int | None:
    for pr in as_list(run.get("pull_requests")):
        number = pr_number(as_dict(pr).get("number"))
        if number is not None:
            return number
    return None  # not a pull request, or one from a fork (GitHub lists none)


def release_asset(asset: dict[str, Any], private: bool) -> Artifact | None:
    """One uploaded asset. A private repository's asset has no URL Revyl could fetch alone:
    its `ref` names it for `artifact_link`."""
    name, asset_id = text(asset.get("name")), text(asset.get("id"))
    if not name or not asset_id or asset.get("state", "uploaded") != "uploaded":
        return None
    if private:
        return Artifact(name=name, kind=artifact_kind(name), ref=RELEASE_ASSET + asset_id)
    url = text(asset.get("browser_download_url"))
    return Artifact(name=name, url=url, kind=artifact_kind(name)) if url else None


def run_artifact(item: dict[str, Any]) -> Artifact | None:
    """One unexpired workflow artifact. GitHub zips an artifact unless it was uploaded with
    `archive: false` (upload-artifact v7), whose name is then the file's own name."""
    name, artifact_id = text(item.get("name")), text(item.get("id"))
    if not name or not artifact_id or item.get("expired"):
        return None
    return Artifact(name=name, kind=artifact_kind(name) or "zip", ref=RUN_ARTIFACT + artifact_id)


class GitHubSource(HmacSignedSource):
    type = "github"
    wiring_hint = (
        "repository Settings > Webhooks > Add webhook: Payload URL {url}, "
        "application/json, its secret; events Releases, Workflow runs, Repository "
        "dispatches"
    )
    Settings = GitHubSettings
    settings: GitHubSettings
    delivery_id_header = "X-GitHub-Delivery"
    fields = frozenset({"repository"})
    sometimes: ClassVar[Mapping[str, str]] = {
        **dict.fromkeys(GENERIC_FIELDS - fields, "repository dispatches only"),
        "build_id": "releases and workflow runs; dispatches whose client_payload names it",
        "build_url": "releases and workflow runs; dispatches whose client_payload names it",
        "platform": "read from the workflow's name or path, or the assets' file types",
        "version": "releases (the tag) and dispatches only",
        "build_number": "workflow runs (run_number) and dispatches only",
        "commit": "workflow runs; a release whose target is a commit, or with api.token",
        "branch": "workflow runs; a release that targets a branch",
        "pr_number": "workflow runs of a pull request, not from a fork",
        "workflow": "workflow runs and dispatches only",
        "run_id": "workflow runs and dispatches only",
        "artifacts": "releases with assets; workflow runs with `workflow_artifacts: true`",
        "actor": "the event's sender",
    }

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self.api = SourceApi("GitHub", self.settings.api.url, self.settings.api.timeout)

    # pure steps

    signature_header = "X-Hub-Signature-256"
    digest = "sha256"
    prefix = "sha256="
    missing_signature = (
        "missing X-Hub-Signature-256: give the GitHub hook a Secret (the relay's "
        "signing secret for this source)"
    )

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        return {
            "X-GitHub-Event": guess_event(body),
            "X-GitHub-Delivery": delivery_id,
            **super().sign(body, secret, now, delivery_id),
        }

    def parse(self, delivery: Delivery) -> Event:
        event_name = delivery.header("x-github-event")
        if not event_name or not delivery.header("x-github-delivery"):
            raise BadRequest("a GitHub delivery needs X-GitHub-Event and X-GitHub-Delivery")
        payload = read_payload(delivery)
        key = f"{self.name}:{event_key(event_name, payload)}"
        if event_name == "ping":
            return Event(key, ignored="ping: the hook reached the relay and its secret matches")
        if event_name == "workflow_run":
            return self._workflow_run(key, payload)
        if event_name == "release":
            return self._release(key, payload)
        if event_name == "repository_dispatch":
            return self._dispatch(key, payload)
        return Event(key, ignored=NOT_HANDLED.format(event_name))

    def _workflow_run(self, key: str, payload: dict[str, Any]) -> Event:
        run = _object(payload, "workflow_run")
        action = text(payload.get("action"))
        if action != "completed":
            return Event(key, ignored=f"workflow run {action!r}: only completed runs are acted on")
        conclusion = text(run.get("conclusion"))
        if conclusion != "success":
            return Event(key, ignored=f"workflow run concluded {conclusion!r}, not 'success'")
        run_id = text(run.get("id"))
        repository = text(_repository(payload).get("full_name"))
        if not run_id or not repository:
            raise BadRequest("workflow_run payload needs `workflow_run.id` and the repository")
        name = text(run.get("name"))
        build = Build(
            source=self.name,
            system="github-actions",
            platform=platform_from_words(name, text(run.get("path"))),
            commit=text(run.get("head_sha")),
            branch=text(run.get("head_branch")),
            pr_number=_pr_number(run),
            workflow=name,
            build_number=text(run.get("run_number")),
            build_id=run_id,
            run_id=run_id,
            build_url=text(run.get("html_url")),
            repository=repository,
            actor=_login(run, "actor") or _login(payload),
        )
        return Event(key, build=build, extra={"github": "workflow_run"})

    def _release(self, key: str, payload: dict[str, Any]) -> Event:
        release = _object(payload, "release")
        action = text(payload.get("action"))
        if action != "published":
            return Event(key, ignored=f"release {action!r}: only published releases are acted on")
        tag = text(release.get("tag_name"))
        repository = _repository(payload)
        full_name = text(repository.get("full_name"))
        if not tag or not full_name:
            raise BadRequest("release payload needs `release.tag_name` and the repository")
        private = repository.get("private") is not False  # unknown: treat as private
        assets = [a for a in as_list(release.get("assets")) if isinstance(a, dict)]
        artifacts = tuple(a for a in (release_asset(x, private) for x in assets) if a)
        target = text(release.get("target_commitish"))
        is_sha = bool(target and SHA.fullmatch(target))
        build = Build(
            source=self.name,
            system="github",
            platform=platform_of_artifacts(artifacts),
            version=tag,
            commit=target if is_sha else None,
            branch=None if is_sha else target,
            build_id=text(release.get("id")),
            build_url=text(release.get("html_url")),
            repository=full_name,
            artifacts=artifacts,
            actor=_login(payload),
        )
        return Event(key, build=build, extra={"github": "release"})

    def _dispatch(self, key: str, payload: dict[str, Any]) -> Event:
        event_type = text(payload.get("action")) or ""
        if not any(fnmatchcase(event_type, glob) for glob in self.settings.dispatch_types):
            return Event(
                key,
                ignored=f"repository_dispatch type {event_type!r} is not in "
                f"sources.{self.name}.dispatch_types",
            )
        client_payload = _object(payload, "client_payload")
        data = dict(client_payload)
        if not (data.get("repository") or data.get("repo")):
            data["repository"] = text(_repository(payload).get("full_name"))
        build = read_build(data, source=self.name, system="github")
        if isinstance(build, str):
            return Event(key, ignored=build)
        return Event(key, build=build.model_copy(update={"actor": _login(payload)}))

    # I/O: the GitHub API

    def _headers(self, secrets: SecretReader) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.settings.api.token:
            headers["Authorization"] = f"Bearer {secrets.read(self.settings.api.token)}"
        return headers

    def enrich(self, event: Event, secrets: SecretReader) -> Event:
        """A release's tag resolved to its commit (with a token only: unauthenticated calls
        share a 60-an-hour limit); a run's artifacts when `workflow_artifacts` is on."""
        build, kind = event.build, event.extra.get("github")
        if build is None or build.repository is None:
            return event
        repo = quote(build.repository, safe="/")
        if kind == "release" and build.commit is None and self.settings.api.token:
            found = self.api.request_json(
                "GET",
                f"/repos/{repo}/commits/{quote(build.version or '', safe='')}",
                headers=self._headers(secrets),
            )
            commit = text(found.get("sha")) if isinstance(found, dict) else None
            return _with(event, build.model_copy(update={"commit": commit}))
        if kind == "workflow_run" and self.settings.workflow_artifacts:
            listed = self.api.request_json(
                "GET",
                f"/repos/{repo}/actions/runs/{build.run_id}/artifacts",
                headers=self._headers(secrets),
                params={"per_page": "100"},
            )
            items = listed.get("artifacts") if isinstance(listed, dict) else None
            artifacts = tuple(
                a for a in (run_artifact(i) for i in as_list(items) if isinstance(i, dict)) if a
            )
            platform = build.platform or platform_of_artifacts(artifacts)
            update = {"artifacts": artifacts, "platform": platform}
            return _with(event, build.model_copy(update=update))
        return event

    def link_problem(self, build: Build, artifact: Artifact) -> str | None:
        needs_token = (artifact.ref or "").startswith((RELEASE_ASSET, RUN_ARTIFACT))
        if needs_token and not self.settings.api.token:
            return (
                f"{artifact.name!r} is in the private repository {build.repository}: set "
                f"sources.{self.name}.api.token to a token that can read it"
            )
        return None

    def artifact_link(
        self, build: Build, artifact: Artifact, secrets: SecretReader
    ) -> ArtifactLink:
        ref = artifact.ref or ""
        if not ref.startswith((RELEASE_ASSET, RUN_ARTIFACT)):
            return super().artifact_link(build, artifact, secrets)
        problem = self.link_problem(build, artifact)
        if problem:
            raise UnprocessableBuild(problem)
        repo = quote(build.repository or "", safe="/")
        if ref.startswith(RELEASE_ASSET):
            return self._release_asset_link(repo, ref[len(RELEASE_ASSET) :], secrets)
        path = f"/repos/{repo}/actions/artifacts/{ref[len(RUN_ARTIFACT) :]}/zip"
        location = self.api.redirect_location(path, headers=self._headers(secrets))
        if location is None:
            raise UpstreamError("the GitHub API answered 200, not a redirect to the artifact")
        return ArtifactLink(location)

    def _release_asset_link(self, repo: str, asset_id: str, secrets: SecretReader) -> ArtifactLink:
        """GitHub answers the asset's API URL (with the token and `Accept: application/octet-
        stream`) with a 302 to a short-lived signed URL: Revyl gets only that. Should GitHub
        stream the asset instead (200), Revyl gets the API URL with the token as headers."""
        path = f"/repos/{repo}/releases/assets/{quote(asset_id, safe='')}"
        headers = {**self._headers(secrets), "Accept": "application/octet-stream"}
        location = self.api.redirect_location(path, headers=headers)
        if location is not None:
            return ArtifactLink(location)
        token_only = {k: v for k, v in headers.items() if k in ("Authorization", "Accept")}
        return ArtifactLink(self.api.url(path), token_only)


def _with(event: Event, build: Build) -> Event:
    return Event(event.key, build=build, routes=event.routes, extra=event.extra)
