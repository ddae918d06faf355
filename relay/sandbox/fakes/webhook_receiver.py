"""A Standard Webhooks receiver on loopback: verifies each POST with the `standardwebhooks`
package (an implementation independent of the relay's own signer) and records it.

- POST <any path> -> the next scripted status (default 200, or 401 when the signature does
  not verify), body `{"ok": true}` / `{"ok": false, "error": ...}`; other methods get 405.

API:

- `WebhookReceiver(secret="whsec_...", statuses=[500, 200])`: `statuses` are answered in
  order, one per POST whatever it carries (so a test can refuse a valid delivery); once
  used up, a verified POST gets 200 and an unverified one 401. `script(*statuses)` appends
  more; e.g. 410 Gone asks the sender to stop.
- `attempts`: every POST (WebhookAttempt: path, headers, body, json, verified, error,
  webhook_id, status answered), in arrival order.
- `messages()`: verified deliveries de-duplicated by webhook-id, in first-arrival order
  (WebhookMessage: id, payload, attempts, accepted = answered 2xx at least once).
- `wait_for(n, timeout=10)`: wait until `n` messages were accepted; returns `messages()`.
- `url` is where to send; any path works and is recorded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply, json_reply


@dataclass
class WebhookAttempt:
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    verified: bool
    error: str | None
    webhook_id: str | None
    status: int = 0


@dataclass
class WebhookMessage:
    id: str
    payload: Any
    attempts: int = 0
    accepted: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver(FakeHTTPServer):
    name = "webhook-receiver"

    def __init__(self, secret: str, statuses: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secret = secret
        self._verifier = Webhook(secret)
        self._statuses: deque[int] = deque(statuses or [])
        self.attempts: list[WebhookAttempt] = []
        self._changed = threading.Condition(self._lock)

    def script(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self.attempts.clear()
            self._statuses.clear()

    def messages(self) -> list[WebhookMessage]:
        with self._lock:
            found: dict[str, WebhookMessage] = {}
            for attempt in self.attempts:
                if not attempt.verified or attempt.webhook_id is None:
                    continue
                message = found.setdefault(
                    attempt.webhook_id,
                    WebhookMessage(attempt.webhook_id, attempt.json, headers=attempt.headers),
                )
                message.attempts += 1
                message.accepted = message.accepted or 200 <= attempt.status < 300
            return list(found.values())

    def wait_for(self, count: int, timeout: float = 10.0) -> list[WebhookMessage]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(m.accepted for m in self.messages()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        return self.messages()

    def handle(self, call: RecordedCall) -> Reply:
        if call.method != "POST":
            return json_reply(405, {"ok": False, "error": "method not allowed"})
        error = None
        try:
            self._verifier.verify(call.body, call.headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as failure:
            error = str(failure) or type(failure).__name__
        attempt = WebhookAttempt(
            path=call.path,
            headers=call.headers,
            body=call.body,
            json=call.json,
            verified=error is None,
            error=error,
            webhook_id=call.headers.get("webhook-id"),
        )
        with self._changed:
            scripted = self._statuses.popleft() if self._statuses else None
            attempt.status = scripted or (200 if error is None else 401)
            self.attempts.append(attempt)
            self._changed.notify_all()
        call.started = 200 <= attempt.status < 300
        if attempt.status < 300:
            return json_reply(attempt.status, {"ok": True})
        return json_reply(attempt.status, {"ok": False, "error": error or "scripted failure"})
