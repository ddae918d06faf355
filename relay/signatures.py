"""Signature checks, pure: bytes and strings in, `Unauthorized` out. Constant-time, on bytes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

from relay.errors import Unauthorized

Digest = Callable[[], "hashlib._Hash"]


def _as_bytes(value: str) -> bytes:
    # Header values arrive as str (latin-1 decoded by the HTTP layer); anything non-ASCII
    # simply fails the comparison instead of raising.
    return value.strip().encode("utf-8", "surrogateescape")


def hmac_hex(secret: str | bytes, message: bytes, digest: Digest) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, digest).hexdigest()


def verify_hex_hmac(
    header: str | None,
    *,
    secret: str,
    message: bytes,
    digest: Digest,
    prefixes: tuple[str, ...] = (),
) -> None:
    """Check a `[prefix]<hex>` signature header against HMAC(secret, message)."""
    if not header:
        raise Unauthorized("missing signature")
    provided = header.strip()
    for prefix in prefixes:
        if provided[: len(prefix)].lower() == prefix:
            provided = provided[len(prefix) :]
            break
    expected = hmac_hex(secret, message, digest).encode()
    if not hmac.compare_digest(expected, _as_bytes(provided).lower()):
        raise Unauthorized()


def verify_standard_webhook(
    headers: dict[str, str], body: bytes, *, secret: str, now: float, tolerance: float = 300
) -> str:
    """Verify a Standard Webhooks delivery; return its `webhook-id` (stable across retries)."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        age = abs(now - int(timestamp))
    except (ValueError, OverflowError):  # not digits, or digits too many for a time
        raise Unauthorized("webhook-timestamp is not a Unix time") from None
    if age > tolerance:
        raise Unauthorized("webhook-timestamp is outside the 5 minute tolerance")
    expected = standard_webhook_signature(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, _as_bytes(value)):
            return msg_id
    raise Unauthorized()


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
