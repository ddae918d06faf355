"""A front end for several relay instances on loopback, as Cloud Run spreads requests over the
instances of a service: each request goes to the next instance in turn."""

from __future__ import annotations

import itertools
import threading
from urllib.parse import urlencode

import requests

from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RoundRobin(FakeHTTPServer):
    name = "front"

    def __init__(self) -> None:
        super().__init__()
        self.backends: list[str] = []
        self._next = itertools.count()
        self._pick = threading.Lock()
        self.served: list[tuple[str, str]] = []  # (backend, path) per request

    def handle(self, call: RecordedCall) -> Reply:
        with self._pick:
            backend = self.backends[next(self._next) % len(self.backends)]
            self.served.append((backend, call.path))
        url = backend + call.path + (f"?{urlencode(call.query)}" if call.query else "")
        headers = {k: v for k, v in call.headers.items() if k not in HOP_BY_HOP}
        answer = requests.request(call.method, url, data=call.body, headers=headers, timeout=60)
        kept = tuple((k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP)
        kept = tuple((k, v) for k, v in kept if k.lower() != "content-type")
        content_type = answer.headers.get("Content-Type", "application/json")
        return Reply(answer.status_code, answer.content, kept, content_type)
