"""The one I/O of the report targets that call an API: a JSON POST, its answer as data.

No redirect is followed (the next host would get the token), no proxy or netrc credentials
come from the environment, and a call that does not get through is `RetryLater`. The targets
read the `HttpAnswer` with pure functions of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from relay.reports._common import HttpAnswer
from relay.tasks import RetryLater

USER_AGENT = "revyl-relay"


class JsonPoster:
    """POSTs JSON to one API (the thin I/O adapter of a report target)."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what  # "GitHub", "Slack": for the reason of a retry
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc credentials from the environment

    def post(self, url: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> HttpAnswer:
        data = json.dumps(body, separators=(",", ":")).encode()
        sent = {"User-Agent": USER_AGENT, "Content-Type": "application/json; charset=utf-8"}
        try:
            answer = self.session.post(
                url,
                data=data,
                headers={**sent, **headers},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            reason = f"{self.what} could not be reached ({type(exc).__name__})"
            raise RetryLater(reason) from None
        return HttpAnswer(answer.status_code, dict(answer.headers), answer.content)
