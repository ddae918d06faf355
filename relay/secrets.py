"""Secrets: Secret Manager (or environment variables), read lazily and cached per instance.

Values never leave this module except to the code that signs or authenticates with them; errors
name the secret, never its value. An empty (or whitespace-only) value is refused like an
unreadable one: as an HMAC key it would let anyone sign.

Concurrent reads of one secret share one fetch (single flight), and each reader waits at most
`wait_seconds` for it: a Secret Manager that hangs costs every waiting delivery one timeout,
not one timeout per delivery queued ahead of it. Reading needs no signature (the signing
secret is what a signature is checked with), so this bound is what an unsigned caller can cost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from relay.config import SecretRef
from relay.errors import SecretUnavailable
from relay.logs import never_show

log = logging.getLogger("relay.secrets")

ENDPOINT_VARIABLE = "RELAY_SECRET_MANAGER_ENDPOINT"
FETCH_TIMEOUT = 10.0  # seconds a fetch may take, retries included; readers wait as long


class EmptySecret(Exception):
    """The secret's value is empty or only whitespace."""


def is_blank(value: str | None) -> bool:
    """No usable secret: unset, empty or only whitespace."""
    return not value or not value.strip()


class SecretReader(Protocol):
    def read(self, ref: SecretRef) -> str: ...


class SecretBackend(ABC):
    @abstractmethod
    def fetch(self, resource: str) -> str:
        """The value of a secret version (`projects/P/secrets/S/versions/V`)."""


class SecretManagerBackend(SecretBackend):
    """The real `google-cloud-secret-manager` client (REST transport), created on first use.

    With RELAY_SECRET_MANAGER_ENDPOINT set (tests, local runs) it talks to that endpoint with
    anonymous credentials; otherwise to Google with the function's service account.
    """

    def __init__(self, endpoint: str | None = None, timeout: float = FETCH_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._client: Any = None  # a SecretManagerServiceClient, imported on first use
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import secretmanager

                if self.endpoint:
                    from google.api_core.client_options import ClientOptions
                    from google.auth.credentials import AnonymousCredentials

                    self._client = secretmanager.SecretManagerServiceClient(
                        transport="rest",
                        credentials=AnonymousCredentials(),
                        client_options=ClientOptions(api_endpoint=self.endpoint),
                    )
                else:
                    self._client = secretmanager.SecretManagerServiceClient(transport="rest")
            return self._client

    def fetch(self, resource: str) -> str:
        from google.api_core.retry import Retry

        retry = Retry(initial=0.2, maximum=1.0, multiplier=2.0, timeout=self.timeout)
        answer = self._get_client().access_secret_version(
            name=resource, retry=retry, timeout=self.timeout
        )
        return str(answer.payload.data.decode("utf-8"))


class Secrets:
    """Reads `SecretRef`s: environment variables directly, Secret Manager through a TTL cache.

    A failed refresh of a cached secret keeps serving the old value (and logs a warning; an
    ERROR if the new value is empty); a secret never read successfully is `SecretUnavailable`
    (503), and so is one whose only value is empty.
    """

    def __init__(
        self,
        backend: SecretBackend,
        *,
        project: str | None,
        ttl_seconds: float,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: float = FETCH_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.project = project
        self.ttl = ttl_seconds
        self.environ = environ
        self.clock = clock
        self.wait_seconds = wait_seconds
        self._cache: dict[str, tuple[str, float]] = {}
        self._flights: dict[str, Future[str]] = {}  # the fetch in progress, per resource
        self._guard = threading.Lock()

    def resource(self, name: str) -> str:
        if name.startswith("projects/"):
            return name if "/versions/" in name else f"{name}/versions/latest"
        if not self.project:
            raise SecretUnavailable(f"secret {name!r} needs a project: set GOOGLE_CLOUD_PROJECT")
        return f"projects/{self.project}/secrets/{name}/versions/latest"

    def read(self, ref: SecretRef) -> str:
        if ref.env:
            value = self.environ.get(ref.env)
            if is_blank(value):
                state = "not set" if value is None else "empty"
                log.error("secret could not be read", extra={"secret": ref.env, "reason": state})
                raise SecretUnavailable(f"environment variable {ref.env} is {state}")
            assert value is not None
            never_show(value)
            return value
        assert ref.secret is not None
        return self._cached(self.resource(ref.secret))

    def _cached(self, resource: str) -> str:
        hit = self._cache.get(resource)
        if hit and self.clock() < hit[1]:
            return hit[0]
        try:
            return self._shared_fetch(resource).result(timeout=self.wait_seconds)
        except FutureTimeout:
            reason = f"Secret Manager did not answer within {self.wait_seconds:g}s"
            return self._stale_or_raise(resource, hit, reason)
        except EmptySecret:
            return self._stale_or_raise(resource, hit, "empty")
        except Exception as exc:  # any client, auth or transport error
            return self._stale_or_raise(resource, hit, type(exc).__name__)

    def _shared_fetch(self, resource: str) -> Future[str]:
        """The fetch of `resource` in progress, or a new one, on a thread of its own: however
        many readers wait, Secret Manager is asked once, and no reader waits past its bound."""
        with self._guard:
            flight = self._flights.get(resource)
            if flight is None:
                flight = self._flights[resource] = Future()
                fetcher = threading.Thread(
                    target=self._fetch, args=(resource, flight), name="secret", daemon=True
                )
                fetcher.start()
            return flight

    def _fetch(self, resource: str, flight: Future[str]) -> None:
        try:
            value = self.backend.fetch(resource).rstrip("\r\n")
            if is_blank(value):
                raise EmptySecret()
            never_show(value)
            self._cache[resource] = (value, self.clock() + self.ttl)
            flight.set_result(value)
        except BaseException as exc:  # every waiter gets the fetch's own failure
            flight.set_exception(exc)
        finally:
            with self._guard:
                if self._flights.get(resource) is flight:
                    del self._flights[resource]

    def _stale_or_raise(self, resource: str, hit: tuple[str, float] | None, reason: str) -> str:
        short = resource.split("/secrets/", 1)[-1].split("/", 1)[0]
        empty = reason == "empty"
        if hit and empty:
            log.error(
                "secret's new value is empty; serving the cached value", extra={"secret": short}
            )
            return hit[0]
        if hit:
            log.warning("secret refresh failed; serving the cached value", extra={"secret": short})
            return hit[0]
        log.error("secret could not be read", extra={"secret": short, "reason": reason})
        if empty:
            raise SecretUnavailable(f"secret {short!r} is empty")
        raise SecretUnavailable(f"secret {short!r} could not be read ({reason})")
