"""Slack (`type: slack`): one message per check in a channel, a thread reply for failures.

When the check starts, `chat.postMessage` to the channel: the route, the build, one line per
run with its report link. At the verdict, `chat.update` of that message (✅/❌/⚠, the counts,
each run's outcome) and, for a `failed` or `error` verdict, a thread reply listing each run
that did not pass with its error and link. With `on:` set, nothing is posted at the start, and
one message is posted at the verdict, only for the verdicts listed.

The thread reply is a step of its own (`steps_after`): the engine claims and records it apart
from the message, so a retry of the verdict never posts it twice. A 429 is retried after its
`Retry-After`; `not_in_channel`, `channel_not_found` and a refused token are final, logged
with the fix. The bot token goes to `api_url` only: no redirect is followed.

`SlashCommandReply` is the implicit target of a Slack source's `/revyl run`: the verdict goes
back to the command's channel, by `chat.postMessage` with the source's `bot_token`, or else
through the command's `response_url` while Slack accepts posts to it (30 minutes).

Calls go through `requests` (the relay's HTTP client already), not `slack_sdk`: its client
follows redirects with the token and reads proxies from the environment, and three calls do
not need it. The messages and the answers are pure (`relay.reports._slack`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from relay.config import ReportSettings, SecretRef
from relay.reports import _slack
from relay.reports._common import HttpAnswer, api_base_url, remote_code
from relay.reports._http import JsonPoster
from relay.reports.base import Refused, ReportTarget, Sent, Skipped
from relay.revyl.sansio import retry_after
from relay.secrets import SecretReader
from relay.tasks import RetryLater
from relay.verdicts.check import Check, Phase, Verdict

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,20}")
DEFAULT_API_URL = "https://slack.com/api"
RESPONSE_URL_WINDOW = 30 * 60.0  # seconds Slack accepts posts to a response_url
RESPONSE_URL_MARGIN = 60.0  # a post this close to the end might arrive after it
THREAD = "thread"


def channel_id(value: str) -> str:
    if not CHANNEL_ID.fullmatch(value):
        raise ValueError(
            f"not a channel id: {value!r} (an id such as C0123ABCD: in Slack, the channel's "
            "name → About → Channel ID)"
        )
    return value


class SlackSettings(ReportSettings):
    channel: str
    token: SecretRef
    on: list[Verdict] | None = Field(None, min_length=1)
    api_url: str = DEFAULT_API_URL
    timeout: float = Field(10.0, gt=0, le=60)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        """YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true."""
        if isinstance(data, Mapping) and True in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        return channel_id(value)

    @field_validator("api_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return api_base_url(value)


class WebApi:
    """Slack's Web API: one JSON POST per method, the bot token in the header."""

    def __init__(self, api_url: str, timeout: float, keys: _slack.Keys) -> None:
        self.api_url = api_url
        self.keys = keys
        self.http = JsonPoster("Slack", timeout)

    def call(self, method: str, token: str, body: Mapping[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        answer = self.http.post(f"{self.api_url}/{method}", body, headers)
        channel = str(body.get("channel", ""))
        return _slack.read_answer(method, answer, time.time(), keys=self.keys, channel=channel)

    def post(self, token: str, channel: str, message: Mapping[str, Any], **extra: Any) -> Sent:
        body = {"channel": channel, **message, "link_names": False, "unfurl_links": False}
        posted = self.call("chat.postMessage", token, {**body, **extra})
        where = str(posted.get("channel") or channel)
        return Sent({"channel": where, "ts": str(posted["ts"])}, detail=f"{where} {posted['ts']}")


class SlackTarget(ReportTarget):
    type = "slack"
    Settings = SlackSettings
    settings: SlackSettings

    def __init__(self, name: str, settings: ReportSettings, secrets: SecretReader) -> None:
        super().__init__(name, settings, secrets)
        key = f"reports.{name}"
        keys = _slack.Keys(f"{key}.token", f"{key}.channel", f"{key}.api_url")
        self.api = WebApi(self.settings.api_url, self.settings.timeout, keys)

    def report(self, phase: Phase, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        on = self.settings.on
        if phase == "started":
            if on is not None:
                return Skipped(f"reports.{self.name}.on is set: one message, at the verdict")
            return self.api.post(self.token(), self.settings.channel, _slack.started_message(check))
        if on is not None and check.verdict not in on:
            return Skipped(f"the verdict {check.verdict} is not in reports.{self.name}.on")
        return self.show_verdict(check, earlier)

    def show_verdict(self, check: Check, earlier: Mapping[str, Any]) -> Sent:
        """The started message updated to the verdict, or the verdict posted when there is
        none (not posted, or deleted since)."""
        token, message = self.token(), _slack.verdict_message(check)
        channel, ts = str(earlier.get("channel") or self.settings.channel), earlier.get("ts")
        if ts:
            try:
                self.api.call("chat.update", token, {"channel": channel, "ts": ts, **message})
                return Sent({"channel": channel, "ts": ts}, detail=f"updated {channel} {ts}")
            except _slack.SlackRefused as refused:
                if refused.code not in _slack.MESSAGE_GONE:
                    raise
        return self.api.post(token, self.settings.channel, message)

    def steps_after(self, phase: Phase, check: Check) -> tuple[str, ...]:
        bad = phase == "finished" and check.verdict in ("failed", "error")
        return (THREAD,) if bad else ()

    def report_step(self, step: str, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        assert step == THREAD
        message = _slack.failures_message(check)
        channel, ts = str(earlier["channel"]), str(earlier["ts"])
        return self.api.post(self.token(), channel, message, thread_ts=ts)

    def token(self) -> str:
        return self.secrets.read(self.settings.token)


# a slash command's verdict, where it was asked for


class SlashCommandReplySettings(ReportSettings):
    """Built by `relay.wiring` from a Slack source's settings, never from `reports:`."""

    type: str = "slack-command-reply"
    source: str
    bot_token: SecretRef | None = None
    api_url: str = DEFAULT_API_URL
    response_url_prefix: str = "https://hooks.slack.com/"
    timeout: float = 10.0


class SlashCommandReply(ReportTarget):
    """The verdict of a check a slash command started, in the command's channel."""

    type = "slack-command-reply"  # not a `reports:` type: no module has this name
    Settings = SlashCommandReplySettings
    settings: SlashCommandReplySettings

    def __init__(self, name: str, settings: ReportSettings, secrets: SecretReader) -> None:
        super().__init__(name, settings, secrets)
        key = f"sources.{self.settings.source}"
        keys = _slack.Keys(f"{key}.bot_token", "the channel of the command", f"{key}.api_url")
        self.api = WebApi(self.settings.api_url, self.settings.timeout, keys)
        self.http = JsonPoster("Slack", self.settings.timeout)

    def report(self, phase: Phase, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        if phase == "started":
            return Skipped("the command's own answer shows the runs it started")
        origin = check.origin or {}
        message = _slack.verdict_message(
            check, _slack.mention(origin.get("user_id")), with_failures=True
        )
        if self.settings.bot_token is not None:
            channel = origin.get("channel_id")
            if not isinstance(channel, str) or not CHANNEL_ID.fullmatch(channel):
                raise Refused(f"the command's channel {str(channel)[:40]!r} is not a channel id")
            token = self.secrets.read(self.settings.bot_token)
            return self.api.post(token, channel, message)
        return self.to_response_url(origin, message, time.time())

    def to_response_url(
        self, origin: Mapping[str, Any], message: _slack.Message, now: float
    ) -> Sent:
        url = origin.get("response_url")
        source = self.settings.source
        if not isinstance(url, str) or not url.startswith(self.settings.response_url_prefix):
            raise Refused(
                f"the command's response_url is not under sources.{source}.response_url_prefix"
            )
        age = now - float(origin.get("received_at") or 0)
        if age > RESPONSE_URL_WINDOW - RESPONSE_URL_MARGIN:
            raise Refused(
                f"undeliverable: the verdict came {age / 60:.0f} minutes after the command, and "
                "Slack takes posts to its response_url for 30: set "
                f"sources.{source}.bot_token to post later verdicts in the channel"
            )
        body = {**message, "response_type": "in_channel", "replace_original": False}
        return read_response_url_answer(self.http.post(url, body, {}), now, source)


def read_response_url_answer(answer: HttpAnswer, now: float, source: str) -> Sent:
    """Slack's answer to a post on a response_url: `ok`, 404 once it is used up or expired."""
    if 200 <= answer.status < 300:
        return Sent(detail=f"posted to the command's response_url ({answer.status})")
    if answer.status == 429 or answer.status >= 500:
        raise RetryLater(f"Slack answered {answer.status}", retry_after(answer.headers, now))
    said = remote_code(answer.body.decode("utf-8", "replace").strip())
    raise Refused(
        f"undeliverable: Slack refused the command's response_url ({answer.status} {said}: it "
        f"takes 5 posts within 30 minutes): set sources.{source}.bot_token to post verdicts "
        "in the channel"
    )
