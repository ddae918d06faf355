"""A thin adapter for build systems' own APIs (enrichment): JSON over one pooled session.

Failures become relay errors a sender can act on: the API refusing (401/403/404/4xx) is a 502
that names the system and status; a timeout, a refused connection or a 5xx is a 503 with
`Retry-After`, since a redelivery may well succeed.

The session never follows a redirect (`session_without_redirects`): every request carries the
source's credential, and `requests` strips only `Authorization` on a redirect to another host,
never a header such as Codemagic's `x-auth-token`. So a credential reaches the configured API
and nothing else, whatever that API answers: a redirect is answered 502 (`redirect_location`
reads one on purpose, and hands it on without the credential).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from relay.config import SecretRef, Strict
from relay.errors import Unavailable, UpstreamError
from relay.http_deadline import deadline, mount_deadlines
from relay.jsontext import read_json


class ApiSettings(Strict):
    """`api:` under a source: where its API is, and the credential to call it with."""

    url: str
    token: SecretRef | None = None
    timeout: float = Field(10.0, gt=0)


def session_without_redirects() -> Any:
    """A `requests.Session` whose every answer is final: a 3xx is returned, never followed, to
    the same host, another port or another host alike."""
    import requests

    class NoRedirects(requests.Session):
        def get_redirect_target(self, resp: requests.Response) -> str | None:
            return None  # what requests follows; None: nothing

    return NoRedirects()


class SourceApi:
    def __init__(self, system: str, base_url: str, timeout: float) -> None:
        import requests

        self._requests = requests
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = mount_deadlines(session_without_redirects())

    def url(self, path: str) -> str:
        """The base URL joined with an absolute path. Never a whole URL: the API token is sent
        with every request, so a URL a payload named could carry it to any host."""
        if not path.startswith("/") or path.startswith("//"):
            raise UpstreamError(f"refusing to call the {self.system} API at {path[:100]!r}")
        return self.base_url + path

    def request_json(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        answer = self._send(method, path, headers=headers, json=json_body, params=params)
        return self.decipher(answer.status_code, answer.content)

    def redirect_location(
        self, path: str, *, headers: Mapping[str, str] | None = None
    ) -> str | None:
        """Where a GET of `path` redirects to, without following it: how an API hands out a
        short-lived download link (GitHub's artifact zip answers 302 to a one-minute URL).
        None when the API answers 2xx, serving the content itself (its body is not read)."""
        answer = self._send("GET", path, headers=headers, allow_redirects=False, stream=True)
        with answer:
            location = answer.headers.get("Location")
            if answer.status_code in (301, 302, 303, 307, 308) and location:
                return str(location)
            if 200 <= answer.status_code < 300:
                return None
            self.decipher(answer.status_code, answer.content)  # raises for an error status
        raise UpstreamError(f"the {self.system} API answered {answer.status_code}, not a redirect")

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        requests = self._requests
        kwargs["headers"] = dict(kwargs.get("headers") or {})
        try:
            with deadline(self.timeout):  # the whole call, not each read
                return self.session.request(method, self.url(path), timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise Unavailable(
                f"the {self.system} API did not answer in {self.timeout:g}s"
            ) from None
        except requests.RequestException as exc:
            message = f"the {self.system} API could not be reached ({type(exc).__name__})"
            raise Unavailable(message) from None

    def decipher(self, status: int, body: bytes) -> Any:
        if status >= 500 or status == 429:
            raise Unavailable(f"the {self.system} API answered {status}")
        if 300 <= status < 400:
            raise UpstreamError(
                f"the {self.system} API answered {status}, a redirect: not followed, since the "
                "relay sends its credential to the configured API only"
            )
        if status >= 400:
            raise UpstreamError(f"the {self.system} API refused ({status}): {_message(body)}")
        try:
            return read_json(body) if body else None
        except ValueError:
            raise UpstreamError(f"the {self.system} API answered {status} with non-JSON") from None


def _message(body: bytes) -> str:
    try:
        data = read_json(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:200] or "no message"
    if isinstance(data, dict):
        for key in ("message", "error", "error_msg", "detail", "errors"):
            if data.get(key):
                return str(data[key])[:200]
    return str(data)[:200]
