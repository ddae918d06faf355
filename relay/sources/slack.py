"""Slack slash commands (`type: slack`): run and check Revyl tests from a channel.

    /revyl run <route> [<version label> | <build_version_id>]
    /revyl status <execution id>
    /revyl routes
    /revyl help

Slack signs the raw form body: `X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:<X-Slack-Request-Timestamp>:<body>">`, the timestamp within 5 minutes. Only the configured
workspace is served; an optional allow-list of user and channel ids decides who may start runs.
The event key is `<source>:<trigger_id>`: one per command typed, so the same command typed twice
is two runs, while a replay of one request starts nothing new.

This module is the source: the form, its signature and the event (pure). What a command does
(run, status, routes, help; Slack's 3-second budget; follow-ups) is `relay/chatops.py`, which
`relay.wiring` registers as the listener of every Slack source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relay.config import SecretRef, SourceSettings, Strict, format_validation_error
from relay.errors import BadRequest, Unauthorized
from relay.models import Event
from relay.signatures import check_timestamp, hmac_hex, verify_hex_hmac
from relay.sources.base import Delivery, Source

TOLERANCE_SECONDS = 300


class AllowList(Strict):
    """Who may start runs: every list given must contain the user's (or channel's) id."""

    users: list[str] | None = Field(None, min_length=1)
    channels: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _something_allowed(self) -> AllowList:
        if self.users is None and self.channels is None:
            raise ValueError("give `users`, `channels` or both (omit `allow` to allow everyone)")
        return self

    def admits(self, user_id: str, channel_id: str) -> bool:
        return (self.users is None or user_id in self.users) and (
            self.channels is None or channel_id in self.channels
        )


class SlackSettings(SourceSettings):
    team_id: str = Field(min_length=1)
    allow: AllowList | None = None
    reply_within: float = Field(2.0, gt=0)  # seconds; Slack gives up at 3
    response_url_prefix: str = "https://hooks.slack.com/"
    # with `verdicts:`, a command's verdict is posted in its channel with this bot token
    # (chat:write); without one it goes to the command's response_url while Slack takes posts
    bot_token: SecretRef | None = None
    api_url: str = "https://slack.com/api"  # the Web API the bot token is sent to

    @field_validator("response_url_prefix")
    @classmethod
    def _a_url_prefix(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or value.count("/") < 2:
            raise ValueError(f"not a URL prefix: {value!r}")
        # the host must end where the prefix says: "https://hooks.slack.com" would admit
        # "https://hooks.slack.com.example.net/..."
        return value if value.count("/") > 2 else value + "/"

    @field_validator("api_url")
    @classmethod
    def _https_api(cls, value: str) -> str:
        host = urlsplit(value).hostname
        loopback = host in ("127.0.0.1", "localhost", "::1") and value.startswith("http://")
        if not host or not (value.startswith("https://") or loopback):
            raise ValueError(f"must be an https URL (http only for loopback): {value!r}")
        return value.rstrip("/")


class SlashCommand(BaseModel):
    """The form fields of a slash command that the relay reads (the rest are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    team_id: str = Field(min_length=1)
    channel_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    trigger_id: str = Field(min_length=1)
    command: str = "/revyl"
    text: str = ""
    user_name: str | None = None
    channel_name: str | None = None
    response_url: str | None = None


def read_form(body: bytes) -> SlashCommand:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 form data") from None
    fields = dict(parse_qsl(text, keep_blank_values=True))
    try:
        return SlashCommand.model_validate(fields)
    except ValidationError as exc:
        message = format_validation_error(exc).replace("\n", "; ")
        raise BadRequest(f"not a Slack slash command: {message}") from None


class SlackSource(Source):
    type = "slack"
    wiring_hint = "your Slack app's Slash Commands: Request URL {url}"
    Settings = SlackSettings
    settings: SlackSettings
    # `/revyl run <route>` runs a route by name: its `when:` is not consulted
    fields = frozenset({"actor"})
    sometimes: ClassVar[Mapping[str, str]] = {
        "platform": "the route's own when.platform",
        "build_version_id": "when the command names a Revyl build",
    }

    # bytes in

    def verify(self, delivery: Delivery, secret: str) -> None:
        timestamp = delivery.header("x-slack-request-timestamp")
        signature = delivery.header("x-slack-signature")
        if not timestamp or not signature:
            raise Unauthorized("missing X-Slack-Signature or X-Slack-Request-Timestamp")
        check_timestamp(
            timestamp, delivery.received_at, TOLERANCE_SECONDS, header="X-Slack-Request-Timestamp"
        )
        signed = b"v0:" + timestamp.encode("utf-8", "surrogateescape") + b":" + delivery.body
        verify_hex_hmac(
            signature, secret=secret, message=signed, digest=hashlib.sha256, prefixes=("v0=",)
        )

    def sign(self, body: bytes, secret: str, now: float, delivery_id: str) -> dict[str, str]:
        timestamp = str(int(now))
        signature = hmac_hex(secret, f"v0:{timestamp}:".encode() + body, hashlib.sha256)
        return {"x-slack-request-timestamp": timestamp, "x-slack-signature": f"v0={signature}"}

    def parse(self, delivery: Delivery) -> Event:
        command = read_form(delivery.body)
        extra = {"command": command, "received_at": delivery.received_at}
        return Event(f"{self.name}:{command.trigger_id}", extra=extra)
