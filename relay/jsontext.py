"""JSON read safely, pure: a depth limit, and strings any answer, log line or header can hold.

Every JSON document the relay reads (a payload, a build system's or Revyl's answer) goes through
`read_json`, and every answer it writes through `dumps`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 64
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # JSON's escape of U+D800-U+DFFF
RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")  # their bytes, as "surrogatepass" writes them


def read_json(body: bytes) -> Any:
    """Any JSON document (a payload, an API's answer, Revyl's) as `readable` data. ValueError
    if it is not JSON; TooDeep, a ValueError, if nested deeper than MAX_JSON_DEPTH."""
    try:
        data = json.loads(body)
    except RecursionError:  # past ~1,000 levels the parser itself gives up
        raise TooDeep from None
    return data if plainly_readable(body) else readable(data)


def plainly_readable(body: bytes | str) -> bool:
    """True when `body` can hold no lone surrogate and cannot nest past MAX_JSON_DEPTH, so its
    parse needs no walk: no `\\uD800`-`\\uDFFF` escape, no raw surrogate bytes (json decodes
    bytes with "surrogatepass"), and fewer brackets than the levels allowed. All of it is
    counted in C: what nearly every payload takes."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw.count(b"{") + raw.count(b"[") >= MAX_JSON_DEPTH:
        return False
    return SURROGATE_ESCAPE.search(raw) is None and RAW_SURROGATE.search(raw) is None


def dumps(value: Any) -> str:
    """`value` as compact JSON text any UTF-8 stream can hold: made `readable` only when it
    carries a string UTF-8 cannot encode (a lone surrogate from a payload)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(readable(value), ensure_ascii=False, separators=(",", ":"))
    return text


class TooDeep(ValueError):
    pass


def readable(value: Any, depth: int = 0) -> Any:
    """A JSON value whose strings (keys too) are valid Unicode: JSON may carry a lone surrogate
    (`"\\ud800"`, or its raw bytes), which no UTF-8 answer, log line or header can hold, so it
    becomes U+FFFD. Raises TooDeep past MAX_JSON_DEPTH nested objects and arrays."""
    if isinstance(value, str):
        return value if value.isascii() else LONE_SURROGATE.sub("\ufffd", value)
    if not isinstance(value, (dict, list)):
        return value
    if depth >= MAX_JSON_DEPTH:
        raise TooDeep
    if isinstance(value, list):
        return [readable(item, depth + 1) for item in value]
    return {readable(key): readable(item, depth + 1) for key, item in value.items()}
