"""A signed outbound webhook (`type: webhook`): any system can consume the verdicts.

Standard Webhooks: `webhook-id` (`msg_<check>_<phase>`, the same on every retry of one
message: the receiver's idempotency key), `webhook-timestamp` (per attempt) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the base64
part of a `whsec_…` secret. Two messages per check:

    {"type": "check.started", "timestamp": "<RFC 3339>",
     "data": {"event", "route", "build", "runs": [{"test_id" | "workflow_id",
              "execution_id", "report_url"}]}}
    {"type": "check.finished", "timestamp": "<RFC 3339>",
     "data": {"event", "route", "verdict": "passed" | "failed" | "error", "build",
              "runs": [{…, "status", "passed": true | false | null, "report_url", "error"?}]}}

2xx is delivered; 5xx, 429 and timeouts are retried; 410 Gone and any other 4xx are final.
No redirect is followed (the next host would get a signed message it was not meant to).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import Field, field_validator

from relay.config import ReportSettings, SecretRef
from relay.reports.base import Refused, ReportTarget, Sent, Skipped
from relay.revyl.sansio import retry_after
from relay.secrets import SecretReader
from relay.signatures import sign_standard_webhook
from relay.tasks import RetryLater
from relay.verdicts.check import Check, Phase, Run

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class WebhookSettings(ReportSettings):
    url: str
    secret: SecretRef
    timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ValueError(f"not an http(s) URL: {value!r}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK:
            raise ValueError(f"must be https (http only for loopback): {value!r}")
        return value


def message_id(check: Check, phase: Phase) -> str:
    return f"msg_{check.id}_{phase}"


def run_fields(run: Run, phase: Phase) -> dict[str, Any]:
    fields: dict[str, Any] = {
        f"{run.kind}_id": run.target_id,
        "execution_id": run.execution_id,
        "report_url": run.report_url,
    }
    if phase == "finished" or run.outcome == "not_started":
        fields["status"] = run.status
        fields["passed"] = run.passed
        if run.error and run.outcome != "passed":
            fields["error"] = run.error
    return fields


def message(check: Check, phase: Phase, now: float) -> dict[str, Any]:
    data: dict[str, Any] = {"event": check.event, "route": check.route}
    if phase == "finished":
        data["verdict"] = check.verdict
    data["build"] = check.build
    data["runs"] = [run_fields(run, phase) for run in check.runs.values()]
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat().replace("+00:00", "Z")
    return {"type": f"check.{phase}", "timestamp": stamp, "data": data}


def signing_secret(value: str, key: str) -> str:
    """The secret as Standard Webhooks defines it: `whsec_` and base64. Receivers' libraries
    decode any secret as base64, so anything else would sign with a key they do not have."""
    try:
        if value.startswith("whsec_") and base64.b64decode(value[6:], validate=True):
            return value
    except (binascii.Error, ValueError):
        pass
    raise Refused(f"{key} must be a Standard Webhooks secret: whsec_ followed by base64")


def read_answer(status: int, headers: Mapping[str, str], now: float) -> Sent:
    """The receiver's answer: delivered, to be retried (RetryLater), or final (Refused)."""
    if 200 <= status < 300:
        return Sent(detail=f"answered {status}")
    if status == 429 or status >= 500:
        raise RetryLater(f"the receiver answered {status}", retry_after(headers, now))
    if status == 410:
        raise Refused("the receiver answered 410 Gone: it asks not to be sent more")
    raise Refused(f"the receiver refused the message ({status})")


class WebhookTarget(ReportTarget):
    type = "webhook"
    Settings = WebhookSettings
    settings: WebhookSettings

    def __init__(self, name: str, settings: ReportSettings, secrets: SecretReader) -> None:
        super().__init__(name, settings, secrets)
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc credentials from the environment

    def secret_problem(self, key: str, value: str) -> str | None:
        try:
            signing_secret(value, f"reports.{self.name}.{key}")
        except Refused as refused:
            return refused.message
        return None

    def describe(self) -> str:
        return f"webhook to {self.settings.url}"

    def report(self, phase: Phase, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        now = time.time()
        key = f"reports.{self.name}.secret"
        secret = signing_secret(self.secrets.read(self.settings.secret), key)
        body = json.dumps(message(check, phase, now), separators=(",", ":")).encode()
        headers = sign_standard_webhook(body, secret, now, message_id(check, phase))
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "revyl-relay"
        try:
            answer = self.session.post(
                self.settings.url,
                data=body,
                headers=headers,
                timeout=self.settings.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise RetryLater(f"the receiver could not be reached ({type(exc).__name__})") from None
        return read_answer(answer.status_code, answer.headers, time.time())
