"""Structured logs: one JSON object per line on stdout, as Cloud Logging reads them.

Every field is bounded, whatever a payload or an answer put in it: a string at FIELD_CAP
characters, a list or mapping at ITEMS_CAP items (each bounded the same way), the stack trace
at TRACE_CAP characters (its end kept), each cut marked with how much was left out. Secrets
are masked before anything is cut, so no cut leaves part of one to be seen.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from relay.text import cut, cut_start

trace_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words
FIELD_CAP = 2000  # characters of any one string in a log line
ITEMS_CAP = 100  # items of any one list or mapping (a fan-out's targets fit)
TRACE_CAP = 8000  # characters of a stack trace, its end kept
_secret_values: set[str] = set()


def never_show(value: str) -> None:
    """Register a secret (token, signing secret): `scrub` masks it wherever it would appear.

    A safety net: no code path puts a secret in a log line or a response on purpose."""
    if len(value) >= MIN_SECRET_LENGTH:
        _secret_values.add(value)
        _secret_values.add(json.dumps(value)[1:-1])  # as it reads inside a JSON string


def scrub(text: str) -> str:
    for value in _secret_values:
        if value in text:
            text = text.replace(value, "***")
    return text


def bounded(value: Any) -> Any:
    """A log field's value, made small: long strings masked then cut (a short one is masked
    with the whole line), containers item by item, anything else as its text (what
    `json.dumps(default=str)` would have written)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= FIELD_CAP else cut(scrub(value), FIELD_CAP)
    if isinstance(value, Mapping):
        items = list(value.items())
        shown = {bounded(str(k)): bounded(v) for k, v in items[:ITEMS_CAP]}
        if len(items) > ITEMS_CAP:
            shown["…"] = f"{len(items) - ITEMS_CAP} more items"
        return shown
    if isinstance(value, list | tuple | set | frozenset):
        values = list(value)
        more = [f"… [{len(values) - ITEMS_CAP} more items]"] if len(values) > ITEMS_CAP else []
        return [bounded(v) for v in values[:ITEMS_CAP]] + more
    return bounded(str(value))


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        trace = trace_context.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        entry = {key: bounded(value) for key, value in entry.items()}
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["stack_trace"] = cut_start(
                scrub(self.formatException(record.exc_info)), TRACE_CAP
            )
        return scrub(json.dumps(entry, default=str))


class JsonHandler(logging.StreamHandler[TextIO]):
    """The relay's own handler (set up once, however often the relay is loaded)."""


def setup_logging(level: int = logging.INFO) -> None:
    logger = logging.getLogger("relay")
    if any(isinstance(h, JsonHandler) for h in logger.handlers):
        return
    handler = JsonHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def trace_from_header(header: str | None, project: str | None) -> str | None:
    """`X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` → `projects/P/traces/TRACE_ID`."""
    if not header or not project:
        return None
    trace_id = header.split("/", 1)[0].strip()
    if not trace_id.isalnum() or len(trace_id) > 64:
        return None
    return f"projects/{project}/traces/{trace_id}"
