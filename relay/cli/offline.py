"""A sandbox for `simulate`: no secret is read and no request leaves the machine.

Sources that enrich a build from their system's API (or chat-ops sources that answer in their
own way) do I/O that a dry-run must not do. Inside `offline()`, every secret reads as a
placeholder and every HTTP request made through `requests` (which the relay's API adapters and
the Google clients' REST transports use) is recorded and refused, so `simulate` can say
what the relay *would* fetch without fetching it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from relay.config import SecretRef

PLACEHOLDER = "simulated-secret-value"
SENSITIVE_HEADERS = ("authorization", "cookie", "x-api-key", "private-token")
TRANSPORT_HEADERS = ("user-agent", "accept-encoding", "connection", "content-length")


@dataclass
class OfflineSecrets:
    """A SecretReader that notes what was asked for and answers with a placeholder."""

    asked: list[str] = field(default_factory=list)

    def read(self, ref: SecretRef) -> str:
        if ref.describe() not in self.asked:
            self.asked.append(ref.describe())
        return PLACEHOLDER


@dataclass
class Recorder:
    requests: list[dict[str, Any]] = field(default_factory=list)


def _masked(headers: Any) -> dict[str, str]:
    shown = {}
    for name, value in dict(headers or {}).items():
        secret = name.lower() in SENSITIVE_HEADERS or PLACEHOLDER in str(value)
        shown[name] = "***" if secret else str(value)
    return shown


def _without_query_secrets(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=parts.query.replace(PLACEHOLDER, "***")))


@contextlib.contextmanager
def offline() -> Iterator[Recorder]:
    """Refuse (and record) every HTTP request made with `requests` while inside."""
    import requests
    from requests.adapters import HTTPAdapter

    recorder = Recorder()
    original = HTTPAdapter.send

    def refuse(adapter: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        recorder.requests.append(
            {
                "method": request.method,
                "url": _without_query_secrets(request.url or ""),
                "headers": _masked(
                    {k: v for k, v in request.headers.items() if k.lower() not in TRANSPORT_HEADERS}
                ),
            }
        )
        raise requests.ConnectionError("simulate makes no network calls")

    HTTPAdapter.send = refuse  # type: ignore[method-assign,assignment]
    try:
        yield recorder
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]
