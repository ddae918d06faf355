"""A fake Bitrise REST API (v0.1) on loopback: builds, their artifacts, expiring download links.

Endpoints (token checked as `Authorization: <token>`, as Bitrise's personal access tokens are):

- GET /v0.1/apps/{app}/builds/{build}                  -> {"data": {commit_hash, branch, ...}}
- GET /v0.1/apps/{app}/builds/{build}/artifacts        -> {"data": [...], "paging": {...}};
  `limit` pages the list and `next` continues it, as Bitrise does
- GET /v0.1/apps/{app}/builds/{build}/artifacts/{slug} -> {"data": {..., expiring_download_url}};
  every call mints a new link (`minted` lists them), like Bitrise's 10-minute links
- GET /downloads/...                                    -> the "binary" (so a link really works)

Unknown builds and artifacts are 404 {"message": "Not Found"}; a wrong token is 401.
Faults: `fail(path_part, reply, times=None)` answers matching requests with `reply` (`times`
requests, or until `reset()`); `Reply(delay=...)` makes a slow API for timeout tests.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply

TOKEN = "bitrise-pat-test-31f9c0"
_BUILD = re.compile(
    r"/v0\.1/apps/(?P<app>[^/]+)/builds/(?P<build>[^/]+)"
    r"(?P<artifacts>/artifacts(?:/(?P<artifact>[^/]+))?)?"
)


def artifact(slug: str, title: str, artifact_type: str = "file", **app_info: str) -> dict[str, Any]:
    """One artifact list entry the way Bitrise lists it."""
    item: dict[str, Any] = {
        "slug": slug,
        "title": title,
        "artifact_type": artifact_type,
        "file_size_bytes": 48213504,
        "is_public_page_enabled": False,
    }
    if app_info:
        item["artifact_meta"] = {"app_info": app_info}
    return item


class FakeBitrise(FakeApi):
    name = "fake-bitrise"

    def __init__(self, token: str = TOKEN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.minted: list[str] = []
        self._builds: dict[tuple[str, str], dict[str, Any]] = {}
        self._artifacts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._state = threading.Lock()

    # --- seeding and scripting ---------------------------------------------------------

    def add_build(
        self, app: str, build: str, artifacts: list[dict[str, Any]], **details: Any
    ) -> None:
        with self._state:
            self._builds[(app, build)] = {"slug": build, "status": 1, **details}
            self._artifacts[(app, build)] = list(artifacts)

    def reset(self) -> None:
        with self._state:
            super().reset()
            self.token = TOKEN
            self.minted.clear()
            self._builds.clear()
            self._artifacts.clear()

    # --- handling ----------------------------------------------------------------------

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        if call.path.startswith("/downloads/"):
            return Reply(200, b"PK\x03\x04 fake binary", content_type="application/octet-stream")
        if call.headers.get("authorization") != self.token:
            return json_reply(401, {"message": "Unauthorized"})
        match = _BUILD.fullmatch(call.path)
        if match is None or call.method != "GET":
            return _not_found()
        key = (match["app"], match["build"])
        with self._state:
            details = self._builds.get(key)
            items = list(self._artifacts.get(key, []))
        if details is None:
            return _not_found()
        if match["artifact"]:
            return self._artifact(items, match["artifact"])
        if match["artifacts"]:
            return _page(items, call.query)
        return json_reply(200, {"data": details})

    def _artifact(self, items: list[dict[str, Any]], slug: str) -> Reply:
        item = next((i for i in items if i["slug"] == slug), None)
        if item is None:
            return _not_found()
        with self._state:
            url = f"{self.url}/downloads/{slug}/{item['title']}?token=tmp{len(self.minted) + 1}"
            self.minted.append(url)
        data = {**item, "expiring_download_url": url, "public_install_page_url": ""}
        return json_reply(200, {"data": data})


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> Reply:
    limit = int(query.get("limit") or 50)
    start = int(query.get("next") or 0)
    chunk = items[start : start + limit]
    following = str(start + limit) if start + limit < len(items) else None
    paging: dict[str, Any] = {"total_item_count": len(items), "page_item_limit": limit}
    if following:
        paging["next"] = following
    return json_reply(200, {"data": chunk, "paging": paging})


def _not_found() -> Reply:
    return json_reply(404, {"message": "Not Found"})
