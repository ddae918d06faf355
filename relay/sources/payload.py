"""Reading build systems' payloads, pure: odd shapes become None, an empty list or a 400.

A signed payload may still have an odd shape (a string where an object was expected, a number
for a name): it must become "not given" or a `BadRequest` naming the field, never a 500.
Every source reads its JSON through `json_object`, the one place that bounds nesting and makes
strings safe to echo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from relay.errors import BadRequest
from relay.jsontext import MAX_JSON_DEPTH, TooDeep, read_json
from relay.models import Artifact, Platform

PLATFORMS: tuple[Platform, ...] = ("ios", "android")
# Objects and arrays inside one another. Build payloads nest under 10 deep; past ~1,000 Python's
# parser overflows its recursion limit, so a limit well below that is a 400, never a 500.
TOO_DEEP = f"body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"


def text(value: Any) -> str | None:
    """A payload value as a non-empty string, or None (numbers become strings)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    result = str(value).strip()
    return result or None


def as_list(value: Any) -> list[Any]:
    """A payload value to iterate: itself if it is a list, else empty (a signed payload may
    still have an odd shape; it must not become a 500)."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """A payload value to read keys from: itself if it is an object, else empty."""
    return value if isinstance(value, dict) else {}


def pr_number(value: Any) -> int | None:
    """A pull request number from `412`, `"412"` or `"#412"`; None for 0, null, "" and
    anything else that is not a positive whole number (CIs send those for non-PR builds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    digits = value.strip().lstrip("#") if isinstance(value, str) else ""
    return int(digits) if digits.isascii() and digits.isdigit() and int(digits) > 0 else None


def read_platform(value: Any, what: str = "platform") -> Platform | None:
    """A payload's platform, lower-cased: `ios`, `android` or None (not given); anything else
    is a BadRequest whose message starts with `what`."""
    name = (text(value) or "").lower() or None
    if name not in (None, "ios", "android"):
        raise BadRequest(f"{what} {name!r} is neither ios nor android")
    return cast("Platform | None", name)


def artifact_kind(name: str) -> str | None:
    lowered = name.lower().split("?", 1)[0]
    for suffix in (".tar.gz", ".apk", ".aab", ".ipa", ".app", ".zip", ".tgz"):
        if lowered.endswith(suffix):
            return suffix[1:]
    return None


KIND_PLATFORMS: dict[str, Platform] = {
    "apk": "android",
    "aab": "android",
    "ipa": "ios",
    "app": "ios",
    "tar.gz": "ios",
}


def platform_of_artifacts(artifacts: Iterable[Artifact]) -> Platform | None:
    """The one platform the artifacts' file types say (`.apk` android, `.ipa` ios), else None.
    A `.zip` says nothing: it may hold a simulator `.app` or be a CI's wrapper around anything."""
    found = {KIND_PLATFORMS[a.kind] for a in artifacts if a.kind in KIND_PLATFORMS}
    return found.pop() if len(found) == 1 else None


def platform_from_words(*names: str | None) -> Platform | None:
    """`Build Android preview` → android, `ios_release.yml` → ios; None if neither or both."""
    words: set[str] = set()
    for name in names:
        words |= set(re.split(r"[^a-z0-9]+", (name or "").lower()))
    found: set[Platform] = {p for p in PLATFORMS if p in words}
    return found.pop() if len(found) == 1 else None


def artifact_from_url(url: str, name: str | None = None) -> Artifact:
    name = name or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return Artifact(name=name, url=url, kind=artifact_kind(name))


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body, or raise BadRequest saying what is wrong: invalid JSON, nested
    deeper than MAX_JSON_DEPTH, or not an object. Its strings come out `readable`."""
    try:
        data = read_json(body)
    except TooDeep:
        raise BadRequest(TOO_DEEP) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data
