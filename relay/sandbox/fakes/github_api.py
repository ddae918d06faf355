"""A fake GitHub REST API on loopback: the few endpoints the relay's `github` source calls.

- GET /repos/{owner}/{repo}/commits/{ref}               -> {"sha": ...} (a tag resolved), or 404
- GET /repos/{owner}/{repo}/actions/runs/{id}/artifacts -> {"total_count", "artifacts": [...]}
- GET /repos/{owner}/{repo}/actions/artifacts/{id}/zip  -> 302 to a one-minute download URL,
  410 once the artifact has expired
- GET /repos/{owner}/{repo}/releases/assets/{id}        -> with `Accept: application/octet-stream`
  302 to a short-lived signed URL (or, with `stream_release_assets`, 200 and the bytes, as
  GitHub may do); without it the asset's JSON
- POST /repos/{owner}/{repo}/statuses/{sha} `{state, target_url?, description?, context?}`
  -> 201 and the status JSON (id, state, description, target_url, context (default
  "default"), created_at, creator...); 422 "Validation Failed" when state is not pending,
  success, failure or error, when description is over 140 characters, after 1000 statuses
  for one sha and context, or for a sha in `unknown_shas` (a commit GitHub never saw; the
  wording of that 422 is unverified). `statuses(repo, sha)` lists what was accepted, in order.
- GET /repos/{owner}/{repo}/commits/{sha}/statuses     -> those statuses, newest first

Every call needs `Authorization: Bearer <token>` (401 `{"message": "Bad credentials"}`
otherwise), as GitHub does for artifact downloads and private repositories. Anything else is
404 `{"message": "Not Found"}`.

Faults: `fail(path_part, reply, times=None)` answers calls whose path contains `path_part`
with `reply` (a status, or a `delay` longer than the relay's timeout), `times` of them or
until `reset()`. `github_error(status, retry_after=None)` builds GitHub's answer for 401, 403,
404, 422, 429 or a 5xx (with `Retry-After` when given), e.g.
`fake.fail("/statuses/", github_error(429, retry_after=1), times=1)`.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply

DOCS = "https://docs.github.com/rest"
DOWNLOAD_HOST = "https://productionresultssa1.blob.core.windows.net"
ASSET_HOST = "https://release-assets.githubusercontent.com"
STATES = ("pending", "success", "failure", "error")
MAX_DESCRIPTION = 140
MAX_STATUSES = 1000  # per sha and context
_STATUS_POST = re.compile(r"/repos/([^/]+/[^/]+)/statuses/([^/]+)")
_STATUS_LIST = re.compile(r"/repos/([^/]+/[^/]+)/commits/([^/]+)/statuses")
_ERRORS = {
    401: "Bad credentials",
    403: "Resource not accessible by personal access token",
    404: "Not Found",
    422: "Validation Failed",
    429: "API rate limit exceeded",
}


def github_error(status: int, retry_after: int | None = None) -> Reply:
    """GitHub's JSON error answer for `status`, with Retry-After when given."""
    message = _ERRORS.get(status, "Server Error")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return json_reply(status, {"message": message, "documentation_url": DOCS}, headers)


def _invalid(field: str, message: str) -> Reply:
    error = {"resource": "Status", "code": "custom", "field": field, "message": message}
    body = {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}
    return json_reply(422, body)


class FakeGitHubApi(FakeApi):
    name = "fake-github"

    def __init__(self, token: str = "ghp_test", **kwargs: Any) -> None:  # noqa: S107
        super().__init__(**kwargs)
        self.token = token
        self.commits: dict[tuple[str, str], str] = {}
        self.run_artifacts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.stream_release_assets = False
        self.unknown_shas: set[str] = set()
        self._statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._ids = itertools.count(1_400_000_001)

    # seeding and faults

    def reset(self) -> None:
        super().reset()
        self.commits.clear()
        self.run_artifacts.clear()
        self.stream_release_assets = False
        self.unknown_shas.clear()
        self._statuses.clear()

    def statuses(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """Commit statuses accepted for `repo` ("owner/name") and `sha`, oldest first."""
        with self._lock:
            return [dict(status) for status in self._statuses.get((repo, sha), [])]

    def add_commit(self, repo: str, ref: str, sha: str) -> None:
        self.commits[(repo, ref)] = sha

    def add_run_artifact(
        self, repo: str, run_id: str, name: str, *, expired: bool = False
    ) -> dict[str, Any]:
        artifact_id = next(self._ids)
        item = {
            "id": artifact_id,
            "node_id": f"MDg6QXJ0aWZhY3Qx{artifact_id}",
            "name": name,
            "size_in_bytes": 48213504,
            "url": f"https://api.github.com/repos/{repo}/actions/artifacts/{artifact_id}",
            "archive_download_url": (
                f"https://api.github.com/repos/{repo}/actions/artifacts/{artifact_id}/zip"
            ),
            "expired": expired,
            "created_at": "2025-11-28T14:18:02Z",
            "expires_at": "2026-02-26T14:18:02Z",
            "updated_at": "2025-11-28T14:18:03Z",
            "workflow_run": {"id": int(run_id), "head_branch": "main"},
        }
        self.run_artifacts.setdefault((repo, run_id), []).append(item)
        return item

    @staticmethod
    def download_url(artifact_id: int | str) -> str:
        return f"{DOWNLOAD_HOST}/actions-results/{artifact_id}/artifact.zip?sig=one-minute"

    @staticmethod
    def asset_url(asset_id: int | str) -> str:
        return f"{ASSET_HOST}/github-production-release-asset/{asset_id}?X-Amz-Expires=300&sig=s"

    # requests

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return github_error(401)
        if call.method == "POST" and (found := _STATUS_POST.fullmatch(call.path)):
            return self._post_status(call, found[1], found[2])
        if call.method == "GET" and (found := _STATUS_LIST.fullmatch(call.path)):
            return json_reply(200, self.statuses(found[1], found[2])[::-1])
        if call.method != "GET":
            return json_reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/commits/(.+)", call.path):
            sha = self.commits.get((found[1], found[2]))
            if sha is None:
                return json_reply(422, {"message": f"No commit found for SHA: {found[2]}"})
            return json_reply(200, {"sha": sha, "commit": {"message": "release"}})
        if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)/artifacts", call.path):
            items = self.run_artifacts.get((found[1], found[2]), [])
            return json_reply(200, {"total_count": len(items), "artifacts": items})
        if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/artifacts/(\d+)/zip", call.path):
            return self._download(found[1], int(found[2]))
        if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/releases/assets/(\d+)", call.path):
            return self._release_asset(call, int(found[2]))
        return json_reply(404, {"message": "Not Found", "documentation_url": DOCS})

    def _post_status(self, call: RecordedCall, repo: str, sha: str) -> Reply:
        body = call.json if isinstance(call.json, dict) else {}
        state, context = body.get("state"), body.get("context") or "default"
        description = body.get("description")
        if state not in STATES:
            return _invalid("state", f"state is not included in the list: {STATES}")
        if isinstance(description, str) and len(description) > MAX_DESCRIPTION:
            return _invalid("description", "description is too long (maximum is 140 characters)")
        if sha in self.unknown_shas:
            return json_reply(422, {"message": f"No commit found for SHA: {sha}"})
        with self._lock:
            posted = self._statuses.setdefault((repo, sha), [])
            same_context = [s for s in posted if s["context"].lower() == str(context).lower()]
            if len(same_context) >= MAX_STATUSES:
                message = "This SHA and context has reached the maximum number of statuses."
                return _invalid("context", message)
            status_id = next(self._ids)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            status = {
                "url": f"https://api.github.com/repos/{repo}/statuses/{sha}",
                "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
                "id": status_id,
                "node_id": f"SC_kwDOfake{status_id}",
                "state": state,
                "description": description,
                "target_url": body.get("target_url"),
                "context": context,
                "created_at": now,
                "updated_at": now,
                "creator": {"login": "revyl-relay-bot", "id": 1, "type": "User"},
            }
            posted.append(status)
        call.started = True
        return json_reply(201, status)

    def _release_asset(self, call: RecordedCall, asset_id: int) -> Reply:
        if call.headers.get("accept") != "application/octet-stream":
            return json_reply(200, {"id": asset_id, "state": "uploaded"})
        if self.stream_release_assets:
            return Reply(200, b"PK\x03\x04 fake apk", content_type="application/octet-stream")
        location = self.asset_url(asset_id)
        return Reply(status=302, headers=(("Location", location),), content_type="text/plain")

    def _download(self, repo: str, artifact_id: int) -> Reply:
        items = [a for (r, _), listed in self.run_artifacts.items() if r == repo for a in listed]
        item = next((a for a in items if a["id"] == artifact_id), None)
        if item is None:
            return json_reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if item["expired"]:
            return json_reply(410, {"message": "Artifact has expired"})
        location = self.download_url(artifact_id)
        return Reply(status=302, headers=(("Location", location),), content_type="text/plain")
