"""Talking to Revyl: one abstract client with the retry rules, one thin `requests` subclass.

Retry rules (why: Revyl's execute endpoints have no idempotency key, so a retried POST that had
reached Revyl starts a second run):
- a request Revyl cannot have acted on (connection never opened, 429, 503) is retried with
  jittered exponential backoff, honouring `Retry-After` (capped), inside the webhook's deadline;
- an ambiguous failure (timeout after sending, reset, 500/502/504) is retried only for
  idempotent calls (from-url ingest, reads), never for execute calls;
- any other 4xx is final.

Each attempt is bounded as a whole (connect, send and reading the whole answer) by
`connect_timeout + request_timeout` (`ingest_timeout` for a from-url ingest), on the wall
clock: the read timeout alone bounds each socket read, which an answer trickled byte by byte
never trips. The relay's lease margin counts on that bound (`RevylSettings.call_seconds`).
"""

from __future__ import annotations

import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from relay.config import RevylSettings
from relay.http_deadline import DeadlineExceeded, deadline, mount_deadlines
from relay.models import Build
from relay.revyl import sansio
from relay.revyl.sansio import ApiRequest, MaybeStarted, NotStarted, RevylError, Started

MAX_ATTEMPTS = 4
BACKOFF_BASE = 0.5
BACKOFF_CAP = 10.0
RETRY_AFTER_CAP = 10.0  # a longer Retry-After is waited this long (then the deadline decides)
LOOKUP_MAX_PAGES = 20


class RevylClient(ABC):
    def __init__(
        self,
        settings: RevylSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._clock = clock  # for deadlines
        self._wall_clock = wall_clock  # for a Retry-After given as an HTTP date

    @abstractmethod
    def send(
        self, request: ApiRequest, token: str, timeout: tuple[float, float]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send once, within `connect + read` seconds in all (`timeout` is the pair): on a
        failure `NotStarted` if the connection never opened, else `MaybeStarted`."""

    def call(self, request: ApiRequest, token: str, deadline: float) -> Any:
        """Send with the retry rules above; return the decoded answer or raise a RevylError."""
        attempt = 0
        while True:
            attempt += 1
            try:
                status, headers, body = self.send(request, token, self._timeout(request))
                return sansio.decipher_response(status, headers, body, self._wall_clock())
            except (NotStarted, MaybeStarted) as exc:
                if isinstance(exc, MaybeStarted) and not request.idempotent:
                    raise
                delay = self._backoff(attempt, exc.retry_after)
                if attempt >= MAX_ATTEMPTS or self._clock() + delay > deadline:
                    raise
                self._sleep(delay)

    def _timeout(self, request: ApiRequest) -> tuple[float, float]:
        read = self.settings.ingest_timeout if request.slow else self.settings.request_timeout
        return self.settings.connect_timeout, read

    @staticmethod
    def _backoff(attempt: int, retry_after: float | None) -> float:
        """Jittered exponential backoff, or Retry-After (capped) when Revyl asks for longer."""
        exponential = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
        jittered = exponential * (0.5 + random.random() / 2)
        return max(jittered, min(RETRY_AFTER_CAP, retry_after or 0.0))

    # The operations the relay needs, each one request (lookup pages until found).

    def execute_test(
        self, token: str, deadline: float, test_id: str, build_version_id: str | None, build: Build
    ) -> Started:
        request = sansio.execute_test(test_id, build_version_id, build, self.settings.client_name)
        return sansio.read_started(self.call(request, token, deadline))

    def execute_workflow(
        self,
        token: str,
        deadline: float,
        workflow_id: str,
        build: Build,
        app_id: str | None,
        pinned_version: str | None,
    ) -> Started:
        request = sansio.execute_workflow(
            workflow_id, build, self.settings.client_name, app_id, pinned_version
        )
        return sansio.read_started(self.call(request, token, deadline))

    def ingest(
        self,
        token: str,
        deadline: float,
        app_id: str,
        from_url: str,
        version: str,
        build: Build,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        request = sansio.ingest_build(app_id, from_url, version, build, headers)
        return sansio.read_ingested(self.call(request, token, deadline))

    def lookup(self, token: str, deadline: float, app_id: str, version: str) -> str | None:
        for page in range(1, LOOKUP_MAX_PAGES + 1):
            answer = self.call(sansio.list_builds(app_id, version, page), token, deadline)
            build_id, has_next = sansio.read_build_page(answer, version)
            if build_id or not has_next:
                return build_id
        return None

    def execution_status(self, token: str, deadline: float, task_id: str) -> dict[str, Any]:
        answer = self.call(sansio.execution_status(task_id), token, deadline)
        return answer if isinstance(answer, dict) else {}

    def workflow_status(self, token: str, deadline: float, task_id: str) -> dict[str, Any]:
        answer = self.call(sansio.workflow_status(task_id), token, deadline)
        return answer if isinstance(answer, dict) else {}


class RequestsRevylClient(RevylClient):
    """The client over one pooled `requests.Session` (one per instance, shared by all webhooks)."""

    def __init__(self, settings: RevylSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        import requests

        self._requests = requests
        self.session = mount_deadlines(
            requests.Session(), pool_connections=4, pool_maxsize=max(10, settings.concurrency * 2)
        )
        # Proxy and CA settings are read from the environment once, here: with `trust_env` on,
        # requests re-reads all of os.environ on every call (~0.2 ms a call, measured).
        self.session.proxies.update(requests.utils.get_environ_proxies(settings.api_url))
        self.session.verify = _ca_bundle() or True
        self.session.trust_env = False

    def send(
        self, request: ApiRequest, token: str, timeout: tuple[float, float]
    ) -> tuple[int, Mapping[str, str], bytes]:
        requests = self._requests
        headers: dict[str, str | bytes] = {
            "Authorization": f"Bearer {token}",
            "User-Agent": "revyl-relay",
            **{name: value.encode() for name, value in request.headers.items()},  # UTF-8
        }
        whole_call = timeout[0] + timeout[1]
        try:
            with deadline(whole_call):
                answer = self.session.request(
                    request.method,
                    self.settings.api_url + request.path,
                    params=request.params,
                    json=request.json,
                    headers=headers,
                    timeout=timeout,
                )
        except DeadlineExceeded:
            raise MaybeStarted(f"Revyl did not answer in full within {whole_call:g}s") from None
        except requests.ConnectTimeout:
            raise NotStarted("could not connect to Revyl (connect timeout)") from None
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise NotStarted("could not connect to Revyl (connection refused)") from None
            raise MaybeStarted("the connection to Revyl broke after the request was sent") from None
        except requests.Timeout:
            raise MaybeStarted(f"Revyl did not answer within {timeout[1]:g}s") from None
        except requests.RequestException as exc:
            raise MaybeStarted(f"request to Revyl failed: {type(exc).__name__}") from None
        except (ValueError, UnicodeError) as exc:  # refused locally, before anything was sent
            raise RevylError(f"the request could not be built: {type(exc).__name__}") from None
        return answer.status_code, answer.headers, answer.content


def _ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def _never_connected(exc: BaseException) -> bool:
    """True when the TCP connection was never established (so nothing was sent)."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (NewConnectionError, NameResolutionError, ConnectionRefusedError)):
            return True
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(
            arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)
        )
    return False
