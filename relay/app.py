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
from relay.plugins import load_config
from relay.sources import Delivery
from relay.tasks.cloud import TASK_PATH, CloudTasksQueue
from relay.wiring import Service, build_service, project_id

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


def respond(service: Service, request: flask.Request) -> Answer:
    name = request.path.strip("/")
    if name == "healthz":
        raise MethodNotAllowed(f"{request.method} is not allowed: GET /healthz", allow="GET, HEAD")
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method} is not allowed: POST a webhook to /<source>")
    if name == TASK_PATH and isinstance(service.tasks, CloudTasksQueue):
        task = service.tasks.receive(lowered(request), read_body(request))
        return answers.task_done(task.kind)
    service.relay.source(name)  # an unknown path is a 404 before the body is read
    body = read_body(request)
    return service.relay.handle(name, Delivery(lowered(request), body, time.time()))


def lowered(request: flask.Request) -> dict[str, str]:
    return {key.lower(): value for key, value in request.headers.items()}


def handle_request(service: Service, request: flask.Request) -> flask.Response:
    relay = service.relay
    if request.path.strip("/") == "healthz" and request.method in ("GET", "HEAD"):
        return flask.jsonify(status="ok", dry_run=relay.dry_run)  # touches no secret, no Revyl
    started = time.perf_counter()
    trace_context.set(trace_from_header(request.headers.get("X-Cloud-Trace-Context"), PROJECT))
    try:
        answer = respond(service, request)
    except RelayError as exc:
        answer = answers.for_error(exc)
    except Exception:
        log.exception("unexpected error")
        answer = answers.internal_error()
    log_answer(request, answer, started)
    if answer.reply is not None:
        payload = json.dumps(answer.reply)
    else:
        payload = answer.body.model_dump_json(exclude_none=True)
    payload = scrub(payload)
    return flask.Response(payload, answer.status, answer.headers, mimetype="application/json")


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


def _load() -> Service:
    setup_logging()
    try:
        service = build_service(load_config())
    except ConfigError as exc:
        log.critical(str(exc))
        print(f"relay: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    relay = service.relay
    log.info(
        "relay ready",
        extra={
            "sources": sorted(relay.sources),
            "routes": len(relay.config.routes),
            "dry_run": relay.dry_run,
            "verdicts": relay.config.verdicts.follow if relay.config.verdicts else None,
        },
    )
    return service


SERVICE = _load()
PROJECT = project_id(SERVICE.relay.config, os.environ)
# gunicorn forks its worker after this import: frozen objects are never scanned by the
# worker's collector, so the pages it shares with the master stay shared (~8 MB per instance).
gc.freeze()


def relay_webhook(request: flask.Request) -> flask.Response:
    return handle_request(SERVICE, request)
