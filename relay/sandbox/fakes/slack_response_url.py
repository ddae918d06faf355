"""A fake of Slack's `response_url` endpoint on loopback: records every follow-up posted.

Slack answers a follow-up with `200 ok` (text/html). `posts()` gives the JSON bodies received;
`wait_for(n)` polls (no sleeps in tests beyond that) until `n` have arrived.
"""

from __future__ import annotations

import time
from typing import Any

from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply

PATH_PREFIX = "/commands/T0001/"


class FakeSlackResponseUrl(FakeHTTPServer):
    name = "fake-slack-response-url"

    def handle(self, call: RecordedCall) -> Reply:
        if call.method != "POST" or not call.path.startswith(PATH_PREFIX):
            return Reply(status=404, body=b"invalid_url", content_type="text/html")
        if not isinstance(call.json, dict):
            return Reply(status=400, body=b"invalid_payload", content_type="text/html")
        call.started = True
        return Reply(status=200, body=b"ok", content_type="text/html")

    @property
    def prefix(self) -> str:
        """The `response_url_prefix` to configure so the relay may post here."""
        return f"{self.url}{PATH_PREFIX}"

    def response_url(self, trigger: str) -> str:
        return f"{self.prefix}{trigger}/hook"

    def posts(self) -> list[dict[str, Any]]:
        return [call.json for call in self.calls if call.started]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posts = self.posts()
            if len(posts) >= count:
                return posts
            time.sleep(0.02)
        return self.posts()
