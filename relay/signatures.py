"""Signature checks, pure: bytes and strings in, `Unauthorized` out. Constant-time, on bytes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from relay.errors import Unauthorized

Digest = str | Callable[[], Any]  # a hashlib name ("sha256") or constructor, as hmac.new takes


def _as_bytes(value: str) -> bytes:
    # Header values arrive as str (latin-1 decoded by the HTTP layer); anything non-ASCII
    # simply fails the comparison instead of raising.
    return value.strip().encode("utf-8", "surrogateescape")


def hmac_hex(secret: str | bytes, message: bytes, digest: Digest) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, digest).hexdigest()


def sign_hex_hmac(secret: str, body: bytes, digest: Digest, prefix: str = "") -> str:
    """A `[prefix]<hex>` signature header value: the inverse of `verify_hex_hmac`."""
    return prefix + hmac_hex(secret, body, digest)


def verify_hex_hmac(
    header: str | None,
    *,
    secret: str,
    message: bytes,
    digest: Digest,
    prefixes: tuple[str, ...] = (),
    missing: str = "missing signature",
) -> None:
    """Check a `[prefix]<hex>` signature header against HMAC(secret, message). `missing` is
    the 401's message when there is no header (say which header, and how to get one)."""
    if not header:
        raise Unauthorized(missing)
    provided = header.strip()
    for prefix in prefixes:
        if provided[: len(prefix)].lower() == prefix:
            provided = provided[len(prefix) :]
            break
    expected = hmac_hex(secret, message, digest).encode()
    if not hmac.compare_digest(expected, _as_bytes(provided).lower()):
        raise Unauthorized()


def verify_token(value: str | None, *, secret: str, header: str) -> None:
    """Check a static token sent as `Bearer <token>` or bare, in constant time."""
    if not value:
        raise Unauthorized(f"missing {header} header")
    provided = value.strip()
    if provided[:7].lower() == "bearer ":
        provided = provided[7:].strip()
    if not hmac.compare_digest(_as_bytes(provided), secret.encode("utf-8", "surrogateescape")):
        raise Unauthorized()


def check_timestamp(
    sent_at: str, now: float, tolerance: float = 300, *, header: str = "webhook-timestamp"
) -> None:
    """Refuse a signed timestamp (Unix seconds, as sent in `header`) more than `tolerance`
    seconds from `now`: a replayed old delivery."""
    try:
        age = abs(now - int(sent_at))
    except (ValueError, OverflowError):  # not digits, or digits too many for a time
        raise Unauthorized(f"{header} is not a Unix time") from None
    if age > tolerance:
        raise Unauthorized(f"{header} is outside the {tolerance / 60:g} minute tolerance")


def verify_standard_webhook(
    headers: dict[str, str], body: bytes, *, secret: str, now: float, tolerance: float = 300
) -> str:
    """Verify a Standard Webhooks delivery; return its `webhook-id` (stable across retries)."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
    check_timestamp(timestamp, now, tolerance)
    expected = standard_webhook_signature(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, _as_bytes(value)):
            return msg_id
    raise Unauthorized()


def sign_standard_webhook(body: bytes, secret: str, now: float, msg_id: str) -> dict[str, str]:
    """The Standard Webhooks headers for `body`: the inverse of `verify_standard_webhook`."""
    timestamp = str(int(now))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + standard_webhook_signature(secret, msg_id, timestamp, body),
    }


def standard_webhook_key(secret: str) -> bytes:
    """`whsec_<base64>` is decoded per the spec; any other secret is used as its UTF-8 bytes."""
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


def standard_webhook_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(standard_webhook_key(secret), signed, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()
