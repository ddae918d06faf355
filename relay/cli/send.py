"""`python -m relay send`: sign a payload the way its source signs and post it to a relay."""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from urllib.parse import urlsplit

from relay.cli.common import CliError, load, read_payload, source_named
from relay.config import RelayConfig, SecretRef
from relay.errors import RelayError


def run(args: argparse.Namespace) -> int:
    import requests

    _, config = load(args.config)
    source = source_named(config, args.source)
    body = read_payload(args.payload)
    secret = signing_secret(config, source.settings.secret, args.secret_env)
    delivery_id = args.delivery_id or f"msg_{uuid.uuid4().hex}"
    try:
        signed = source.sign(body, secret, time.time(), delivery_id)
    except RelayError as exc:
        raise CliError(f"cannot sign this body as {source.type} does: {exc.message}") from None
    headers = {"Content-Type": content_type(body), **signed, **dict(args.headers)}
    url = target_url(args.url, source.name)
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=args.timeout)
    except requests.RequestException as exc:
        raise CliError(f"could not reach {url} ({type(exc).__name__})") from None
    print(f"POST {url}  (signed: {', '.join(signed) or 'no signature headers'})")
    print(f"{answer.status_code} {answer.reason}")
    print(pretty(answer.text))
    return 0 if answer.ok else 1


def signing_secret(config: RelayConfig, ref: SecretRef, secret_env: str | None) -> str:
    """The source's secret from `--secret-env`, else from where the config says it lives."""
    if secret_env:
        ref = SecretRef(env=secret_env)
    if ref.env:
        value = os.environ.get(ref.env)
        if not value:
            raise CliError(f"set the environment variable {ref.env} to the signing secret")
        return value
    from relay.wiring import secrets_for

    return secrets_for(config, os.environ, ttl_seconds=0).read(ref)


def content_type(body: bytes) -> str:
    """JSON bodies as JSON; anything else (Slack's forms) as a form."""
    start = body.lstrip()[:1]
    return "application/json" if start in (b"{", b"[") else "application/x-www-form-urlencoded"


def target_url(base: str, source: str) -> str:
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"--url must be an http(s) URL, got {base!r}")
    if parts.path.rstrip("/").rsplit("/", 1)[-1] == source:
        return base
    return base.rstrip("/") + "/" + source


def pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text
