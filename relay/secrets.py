"""Secrets: Secret Manager (or environment variables), read lazily and cached per instance.

Values never leave this module except to the code that signs or authenticates with them; errors
name the secret, never its value.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from relay.config import SecretRef
from relay.errors import SecretUnavailable
from relay.logs import never_show

log = logging.getLogger("relay.secrets")

ENDPOINT_VARIABLE = "RELAY_SECRET_MANAGER_ENDPOINT"
FETCH_TIMEOUT = 10.0


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

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = endpoint
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

        retry = Retry(initial=0.2, maximum=1.0, multiplier=2.0, timeout=FETCH_TIMEOUT)
        answer = self._get_client().access_secret_version(
            name=resource, retry=retry, timeout=FETCH_TIMEOUT
        )
        return str(answer.payload.data.decode("utf-8"))


class Secrets:
    """Reads `SecretRef`s: environment variables directly, Secret Manager through a TTL cache.

    A failed refresh of a cached secret keeps serving the old value (and logs a warning);
    a secret never read successfully is `SecretUnavailable` (503).
    """

    def __init__(
        self,
        backend: SecretBackend,
        *,
        project: str | None,
        ttl_seconds: float,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.project = project
        self.ttl = ttl_seconds
        self.environ = environ
        self.clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
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
            if not value:
                raise SecretUnavailable(f"environment variable {ref.env} is not set")
            never_show(value)
            return value
        assert ref.secret is not None
        return self._cached(self.resource(ref.secret))

    def _cached(self, resource: str) -> str:
        hit = self._cache.get(resource)
        if hit and self.clock() < hit[1]:
            return hit[0]
        with self._lock_for(resource):
            hit = self._cache.get(resource)
            if hit and self.clock() < hit[1]:
                return hit[0]
            try:
                value = self.backend.fetch(resource).rstrip("\r\n")
            except Exception as exc:  # any client, auth or transport error
                return self._stale_or_raise(resource, hit, exc)
            never_show(value)
            self._cache[resource] = (value, self.clock() + self.ttl)
            return value

    def _stale_or_raise(self, resource: str, hit: tuple[str, float] | None, exc: Exception) -> str:
        short = resource.split("/secrets/", 1)[-1].split("/", 1)[0]
        reason = type(exc).__name__
        if hit:
            log.warning("secret refresh failed; serving the cached value", extra={"secret": short})
            return hit[0]
        log.error("secret could not be read", extra={"secret": short, "reason": reason})
        raise SecretUnavailable(f"secret {short!r} could not be read ({reason})") from None

    def _lock_for(self, resource: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(resource, threading.Lock())
