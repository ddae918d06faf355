"""A fake Codemagic REST API on loopback: the artifact public-URL call the relay makes.

- POST /artifacts/{secure path}/public-url  `{"expiresAt": <unix seconds>}` with
  `x-auth-token` -> `{"url": ..., "expiresAt": "<ISO 8601>"}` (Codemagic's documented shape)

Without the right `x-auth-token`: 401. A body without an integer `expiresAt` in the future:
400. Anything else: 404.

Faults: `fail(path_part, reply)` answers every call whose path contains `path_part` with
`reply` until `reset()`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply

PUBLIC_URL = re.compile(r"/artifacts/([^/.][^/]*/[^/]+/[^/]+)/public-url")


class FakeCodemagicApi(FakeApi):
    name = "fake-codemagic"

    def __init__(self, token: str = "cm_test", **kwargs: Any) -> None:  # noqa: S107
        super().__init__(**kwargs)
        self.token = token
        self.minted: list[dict[str, Any]] = []

    def reset(self) -> None:
        super().reset()
        self.minted.clear()

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        if call.headers.get("x-auth-token") != self.token:
            return json_reply(401, {"error": "Authentication credentials were not provided"})
        found = PUBLIC_URL.fullmatch(call.path)
        if call.method != "POST" or found is None:
            return json_reply(404, {"error": "Not found"})
        body = call.json if isinstance(call.json, dict) else {}
        expires = body.get("expiresAt")
        if not isinstance(expires, int) or isinstance(expires, bool) or expires <= time.time():
            return json_reply(400, {"error": "expiresAt must be a future UNIX timestamp"})
        secure_path = found[1]
        url = f"https://api.codemagic.io/artifacts/.public{len(self.minted)}/{secure_path}"
        self.minted.append({"path": secure_path, "url": url, "expiresAt": expires})
        iso = datetime.fromtimestamp(expires, UTC).isoformat()
        return json_reply(200, {"url": url, "expiresAt": iso})
