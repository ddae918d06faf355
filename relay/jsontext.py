"""JSON read safely, pure: a depth limit, and strings any answer, log line or header can hold.

Every JSON document the relay reads (a payload, a build system's or Revyl's answer) goes through
`read_json`, and every answer it writes through `readable`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 64
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def read_json(body: bytes) -> Any:
    """Any JSON document (a payload, an API's answer, Revyl's) as `readable` data. ValueError
    if it is not JSON; TooDeep, a ValueError, if nested deeper than MAX_JSON_DEPTH."""
    try:
        data = json.loads(body)
    except RecursionError:  # past ~1,000 levels the parser itself gives up
        raise TooDeep from None
    return readable(data)


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
