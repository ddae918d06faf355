"""The HTTP edge: a functions-framework (Flask) request in, a JSON response out.

Loading this module loads and checks the configuration, so a bad config stops the function at
start-up. Every error becomes a response here (as `relay.answers` decides it), and every
request is logged here, once.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from typing import Any

import flask

from relay import answers
from relay.answers import Answer
from relay.errors import ConfigError, MethodNotAllowed, PayloadTooLarge, RelayError
from relay.logs import scrub, setup_logging, trace_context, trace_from_header
from relay.pipeline import Relay
from relay.plugins import load_config
from relay.sources import Delivery
from relay.wiring import build_relay, project_id

MAX_BODY_BYTES = 1 << 20

log = logging.getLogger("relay")


def read_body(request: flask.Request) -> bytes:
    """The raw body, refused past 1 MiB before anything parses it."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    while chunk := request.stream.read(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def respond(relay: Relay, request: flask.Request) -> Answer:
    name = request.path.strip("/")
    if name == "healthz":
        raise MethodNotAllowed(f"{request.method} is not allowed: GET /healthz", allow="GET, HEAD")
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method} is not allowed: POST a webhook to /<source>")
    relay.source(name)  # an unknown path is a 404 before the body is read
    body = read_body(request)
    headers = {key.lower(): value for key, value in request.headers.items()}
    return relay.handle(name, Delivery(headers, body, time.time()))


def handle_request(relay: Relay, request: flask.Request) -> flask.Response:
    if request.path.strip("/") == "healthz" and request.method in ("GET", "HEAD"):
        return flask.jsonify(status="ok", dry_run=relay.dry_run)  # touches no secret, no Revyl
    started = time.perf_counter()
    trace_context.set(trace_from_header(request.headers.get("X-Cloud-Trace-Context"), PROJECT))
    try:
        answer = respond(relay, request)
    except RelayError as exc:
        answer = answers.for_error(exc)
    except Exception:
        log.exception("unexpected error")
        answer = answers.internal_error()
    log_answer(request, answer, started)
    payload = scrub(serialized(answer))
    return flask.Response(payload, answer.status, answer.headers, mimetype="application/json")


def serialized(answer: Answer) -> str:
    """The answer as JSON. A lone surrogate from a payload (`"x\\ud800"`: valid as a JSON
    escape, with no UTF-8) goes back as that escape, where pydantic's encoder would raise."""
    if answer.reply is not None:
        return json.dumps(answer.reply)
    try:
        return answer.body.model_dump_json(exclude_none=True)
    except ValueError:
        return json.dumps(answer.body.model_dump(mode="json", exclude_none=True))


def log_answer(request: flask.Request, answer: Answer, started: float) -> None:
    body = answer.body
    fields: dict[str, Any] = {
        "source": request.path.strip("/") or None,
        "method": request.method,
        "status": answer.status,
        "event": body.event,
        "decision": body.decision,
        "reason": body.reason,
        "targets": [e.target for e in body.executions],
        "execution_ids": body.execution_ids,
        "errors": [e.message for e in body.errors] or None,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    severity = logging.ERROR if answer.status >= 500 else logging.INFO
    message = f"{fields['source']}: {body.decision}" + (f" ({body.reason})" if body.reason else "")
    log.log(severity, message, extra={k: v for k, v in fields.items() if v not in (None, [])})


def _load() -> Relay:
    setup_logging()
    try:
        relay = build_relay(load_config())
    except ConfigError as exc:
        log.critical(str(exc))
        print(f"relay: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    log.info(
        "relay ready",
        extra={
            "sources": sorted(relay.sources),
            "routes": len(relay.config.routes),
            "dry_run": relay.dry_run,
        },
    )
    return relay


RELAY = _load()
PROJECT = project_id(RELAY.config, os.environ)
# gunicorn forks its worker after this import: frozen objects are never scanned by the
# worker's collector, so the pages it shares with the master stay shared (~8 MB per instance).
gc.freeze()


def relay_webhook(request: flask.Request) -> flask.Response:
    return handle_request(RELAY, request)
