"""The relay's errors: each knows the HTTP status and decision it answers with.

Every failure a caller can cause or suffer is one of these; `relay.app` turns them into a JSON
response in one place, so no code path builds an error response of its own.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error that becomes an HTTP answer."""

    status: int = 500
    decision: str = "failed"
    retry_after: int | None = None

    def __init__(
        self, message: str, *, retry_after: int | None = None, event: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.event = event  # the event key, once the delivery has been parsed
        if retry_after is not None:
            self.retry_after = retry_after


class Rejected(RelayError):
    """The request was refused before any work started."""

    decision = "rejected"


class BadRequest(Rejected):
    status = 400


class Unauthorized(Rejected):
    """Bad or missing signature. The message never hints at the expected value."""

    status = 401

    def __init__(self, message: str = "signature verification failed") -> None:
        super().__init__(message)


class UnknownSource(Rejected):
    status = 404


class MethodNotAllowed(Rejected):
    status = 405

    def __init__(self, message: str, *, allow: str = "POST") -> None:
        super().__init__(message)
        self.allow = allow  # the answer's Allow header (RFC 9110)


class PayloadTooLarge(Rejected):
    status = 413


class UnprocessableBuild(Rejected):
    """The payload is well-formed, but the routes cannot act on it."""

    status = 422


class InProgress(RelayError):
    """The same event is being handled elsewhere; the sender should retry later."""

    status = 409
    decision = "in_progress"
    retry_after = 30


class Unavailable(RelayError):
    """A dependency (Secret Manager, Firestore, Revyl) could not be reached: retry later."""

    status = 503
    retry_after = 30


class SecretUnavailable(Unavailable):
    pass


class StoreUnavailable(Unavailable):
    pass


class UpstreamError(RelayError):
    """A build system's API (for enrichment) or Revyl refused or failed."""

    status = 502


class ConfigError(Exception):
    """The configuration is invalid; raised at start-up, never per request."""
