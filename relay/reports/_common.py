"""What the report targets share, pure: an HTTP answer as data, settings checks, text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_WAIT = 3600.0  # seconds: the longest wait a rate limit's reset is honoured for
ERROR_CODE = re.compile(r"[a-z0-9_.]{1,64}")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


def api_base_url(value: str) -> str:
    """An API's base URL: https (http only on loopback, for tests), no query, no trailing /."""
    parts = urlsplit(value)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ValueError(f"not an http(s) URL: {value!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ValueError(f"must be https (http only for loopback): {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"must be a base URL, without query or fragment: {value!r}")
    return value.rstrip("/")


def remote_code(value: Any) -> str:
    """An error code another system answered, fit for a log line (or "unknown")."""
    text = str(value or "")
    return text if ERROR_CODE.fullmatch(text) else "unknown"


def capped_wait(seconds: float | None) -> float | None:
    return None if seconds is None else min(MAX_WAIT, max(0.0, seconds))


def build_label(build: Mapping[str, Any]) -> str | None:
    """ "2.4.0 (187)", "2.4.0" or "(187)": how a build is named to people (None: no version)."""
    version, number = build.get("version"), build.get("build_number")
    if version and number:
        return f"{version} ({number})"
    if version or number:
        return str(version) if version else f"({number})"
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


def cap(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
