"""The relay's errors: each carries the *cause* of a failure, in the domain's words.

What a cause answers over HTTP (status, decision, headers) is decided in one place,
`relay.answers`; nothing here knows HTTP. Every failure a caller can cause or suffer is one
of these, and the HTTP edge turns it into an answer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Cause(StrEnum):
    """Why a delivery, or one target of it, was not carried out."""

    BAD_REQUEST = "bad_request"  # the payload or its headers are malformed
    UNAUTHORIZED = "unauthorized"  # bad or missing signature
    UNKNOWN_SOURCE = "unknown_source"  # no source at this path
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"  # the body is over the limit
    UNPROCESSABLE = "unprocessable"  # well-formed, but the routes cannot act on it
    IN_PROGRESS = "in_progress"  # another delivery of the same event holds it
    UNAVAILABLE = "unavailable"  # a dependency could not be reached: retry later
    UPSTREAM = "upstream"  # a build system's API refused
    REVYL = "revyl"  # Revyl refused or failed a call
    NOT_STARTED = "not_started"  # the relay stopped starting things (the claim's lease ended)
    INTERNAL = "internal"  # a bug: nothing the sender can do


class RelayError(Exception):
    """Base of every error that becomes an answer."""

    cause: ClassVar[Cause] = Cause.INTERNAL

    def __init__(
        self, message: str, *, retry_after: int | None = None, event: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.event = event  # the event key, once the delivery has been parsed
        self.retry_after = retry_after  # seconds; None: the cause's own (relay.answers)


class BadRequest(RelayError):
    cause = Cause.BAD_REQUEST


class Unauthorized(RelayError):
    """Bad or missing signature. The message never hints at the expected value."""

    cause = Cause.UNAUTHORIZED

    def __init__(self, message: str = "signature verification failed") -> None:
        super().__init__(message)


class UnknownSource(RelayError):
    cause = Cause.UNKNOWN_SOURCE


class MethodNotAllowed(RelayError):
    cause = Cause.METHOD_NOT_ALLOWED

    def __init__(self, message: str, *, allow: str = "POST") -> None:
        super().__init__(message)
        self.allow = allow  # the answer's Allow header (RFC 9110)


class PayloadTooLarge(RelayError):
    cause = Cause.TOO_LARGE


class UnprocessableBuild(RelayError):
    """The payload is well-formed, but the routes cannot act on it."""

    cause = Cause.UNPROCESSABLE


class InProgress(RelayError):
    """The same event is being handled elsewhere; the sender should retry later."""

    cause = Cause.IN_PROGRESS


class Unavailable(RelayError):
    """A dependency (Secret Manager, Firestore, Revyl, a build system) could not be reached."""

    cause = Cause.UNAVAILABLE


class SecretUnavailable(Unavailable):
    pass


class StoreUnavailable(Unavailable):
    pass


class UpstreamError(RelayError):
    """A build system's API (for enrichment) refused or failed."""

    cause = Cause.UPSTREAM


class ConfigError(Exception):
    """The configuration is invalid; raised at start-up, never per request."""
