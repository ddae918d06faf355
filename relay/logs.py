"""Structured logs: one JSON object per line on stdout, as Cloud Logging reads them."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import TextIO

trace_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words
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
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["stack_trace"] = self.formatException(record.exc_info)
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
