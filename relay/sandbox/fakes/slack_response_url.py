"""A fake of Slack's `response_url` endpoint on loopback: records every follow-up posted.

Slack answers a follow-up with `200 ok` (text/html). `posts()` gives the JSON bodies received;
`wait_for(n)` polls (no sleeps in tests beyond that) until `n` have arrived.

Slack's limit: a response_url takes at most 5 posts within 30 minutes of its first (attributes
`max_posts`, `window`). A 6th post, or any post once the window has passed, is refused with
404 `used_url` / `expired_url` (text/html) and not recorded in `posts()`. Slack documents the
limit but not its answer: those two answers are a plausible guess, unverified.
"""

from __future__ import annotations

import time
from typing import Any

from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply

PATH_PREFIX = "/commands/T0001/"
MAX_POSTS = 5
WINDOW = 30 * 60.0


class FakeSlackResponseUrl(FakeHTTPServer):
    name = "fake-slack-response-url"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_posts = MAX_POSTS
        self.window = WINDOW
        self._uses: dict[str, tuple[float, int]] = {}  # path -> (first post, posts accepted)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._uses.clear()

    def handle(self, call: RecordedCall) -> Reply:
        if call.method != "POST" or not call.path.startswith(PATH_PREFIX):
            return Reply(status=404, body=b"invalid_url", content_type="text/html")
        if not isinstance(call.json, dict):
            return Reply(status=400, body=b"invalid_payload", content_type="text/html")
        refused = self._use(call.path)
        if refused is not None:
            return Reply(status=404, body=refused.encode(), content_type="text/html")
        call.started = True
        return Reply(status=200, body=b"ok", content_type="text/html")

    def _use(self, path: str) -> str | None:
        """Count one post to `path`; the refusal if it is over Slack's limit."""
        now = time.monotonic()
        with self._lock:
            first, used = self._uses.get(path, (now, 0))
            if now - first > self.window:
                return "expired_url"
            if used >= self.max_posts:
                return "used_url"
            self._uses[path] = (first, used + 1)
        return None

    @property
    def prefix(self) -> str:
        """The `response_url_prefix` to configure so the relay may post here."""
        return f"{self.url}{PATH_PREFIX}"

    def response_url(self, trigger: str) -> str:
        return f"{self.prefix}{trigger}/hook"

    def posts(self) -> list[dict[str, Any]]:
        return [call.json for call in self.calls if call.started and isinstance(call.json, dict)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posts = self.posts()
            if len(posts) >= count:
                return posts
            time.sleep(0.02)
        return self.posts()
