"""The HTTP edge: a functions-framework (Flask) request in, a JSON response out.

Loading this module loads and checks the configuration, so a bad config stops the function at
start-up. Every error becomes a response here (as `relay.answers` decides it), and every
request is logged here, once.
"""

# ruff: noqa: E402 - the collector is turned off before the imports it would slow down

from __future__ import annotations

import gc

# Loading makes many long-lived objects (modules, classes, the config) and no garbage worth a
# collection: the collector is off until they are frozen below (~80 ms of a cold start).
gc.disable()

import logging
import os
import sys
import time
from typing import Any

import flask

from relay import answers
from relay.answers import Answer
from relay.errors import BadRequest, ConfigError, MethodNotAllowed, PayloadTooLarge, RelayError
from relay.jsontext import dumps
from relay.logs import scrub, setup_logging, trace_context, trace_from_header
from relay.pipeline import Relay
from relay.plugins import load_config
from relay.sources import Delivery
from relay.startup import project_id
from relay.tasks import TASK_PATH
from relay.wiring import Service, build_service

MAX_BODY_BYTES = 1 << 20
MAX_DELIVERY_ID = 200  # characters of a sender's delivery id that are logged
MAX_SOURCE_NAME = 100  # characters of a path shown as a source name

log = logging.getLogger("relay")


def read_body(request: flask.Request) -> bytes:
    """The raw body, refused past 1 MiB before anything parses it, and refused when it cannot
    be read whole (malformed chunked encoding, fewer bytes than its Content-Length)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    while chunk := _read(request):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    if length is not None and size < length:
        raise BadRequest(f"body ended after {size} of its {length} bytes (Content-Length)")
    return b"".join(chunks)


def _read(request: flask.Request) -> bytes:
    try:
        return request.stream.read(65536)
    except Exception as exc:  # the server's own reader refusing the sender's bytes (gunicorn's
        # InvalidChunkSize, a client gone): the request's fault, whatever the server calls it
        raise BadRequest(f"the body could not be read ({type(exc).__name__})") from None


def source_name(relay: Relay, request: flask.Request) -> str:
    """The source the path names, as answers and logs show it: a long path that names no
    source is cut (the server puts no limit on the request line)."""
    name = request.path.strip("/")
    if len(name) <= MAX_SOURCE_NAME or name in relay.sources:
        return name
    return name[:MAX_SOURCE_NAME] + "…"


def respond(service: Service, request: flask.Request) -> Answer:
    relay = service.relay
    name = source_name(relay, request)
    if name == "healthz":
        raise MethodNotAllowed(f"{request.method} is not allowed: GET /healthz", allow="GET, HEAD")
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method} is not allowed: POST a webhook to /<source>")
    headers = {key.lower(): value for key, value in request.headers.items()}
    if name == TASK_PATH and service.receive_task is not None:
        task = service.receive_task(headers, read_body(request))
        return answers.task_done(task.kind)
    relay.source(name)  # an unknown path is a 404 before the body is read
    body = read_body(request)
    return relay.handle(name, Delivery(headers, body, time.time()))


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
    try:
        payload = encode(answer)
    except Exception:  # the runs may have started: still a JSON answer, and a JSON log line
        log.exception("the answer could not be serialized")
        answer = answers.internal_error()
        payload = encode(answer)
    log_answer(request, source_name(relay, request), answer, started, delivery_id(relay, request))
    return flask.Response(payload, answer.status, answer.headers, mimetype="application/json")


def encode(answer: Answer) -> str:
    """The answer's JSON text. Strings from a payload or from Revyl are made `readable` first:
    one lone surrogate would otherwise make the whole answer unserializable."""
    if answer.reply is not None:
        data: Any = answer.reply
    else:
        data = answer.body.model_dump(mode="json", exclude_none=True)
    return scrub(dumps(data))


def delivery_id(relay: Relay, request: flask.Request) -> str | None:
    """The sender's id of this delivery (GitHub's GUID, `webhook-id`), for the log line: never
    the event key, which only signed content makes."""
    source = relay.sources.get(source_name(relay, request))
    header = source.delivery_id_header if source else None
    value = request.headers.get(header) if header else None
    return value[:MAX_DELIVERY_ID] if value else None


def log_answer(
    request: flask.Request,
    source: str,
    answer: Answer,
    started: float,
    delivery: str | None = None,
) -> None:
    body = answer.body
    fields: dict[str, Any] = {
        "source": source or None,
        "delivery_id": delivery,
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
    if answer.status == 401:  # most often a build system wired with the wrong secret
        severity = logging.WARNING
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
gc.enable()


def relay_webhook(request: flask.Request) -> flask.Response:
    return handle_request(SERVICE, request)
