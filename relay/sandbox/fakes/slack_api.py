"""A fake Slack Web API on loopback: chat.postMessage, chat.update and auth.test.

Point the real client at it: `slack_sdk.WebClient(token=..., base_url=fake.url + "/api/")`.

- POST /api/chat.postMessage `{channel, text?, blocks?, thread_ts?, ...}` -> 200 `{"ok": true,
  "channel", "ts", "message"}`; `ts` is unique per channel ("<epoch seconds>.<6 digits>");
  with `thread_ts` the message is a reply recorded under that parent. As Slack does, a reply
  to a thread_ts no message has is accepted (and seen nowhere); a malformed one is
  `invalid_thread_ts`.
- POST /api/chat.update `{channel, ts, text?, blocks?}` -> `{"ok": true, "channel", "ts",
  "text", "message"}`; `message_not_found` for an unknown ts, `cant_update_message` for a
  message another app posted (`add_foreign_message`).
- POST /api/auth.test -> `{"ok": true, "team", "user", "team_id", "user_id", "bot_id"}`.
Bodies are JSON (what slack_sdk sends, token in `Authorization: Bearer xoxb-...`) or form
encoded (token in the header or a `token` field). Errors are HTTP 200 `{"ok": false, "error"}`:
`not_authed` (no token), `invalid_auth` (another token), `channel_not_found` (no channel, or
one not in `channels` when that set is given), `no_text` (no text, blocks or attachments),
`unknown_method`. A rate limit is HTTP 429 with `Retry-After` and `{"ok": false, "error":
"ratelimited"}`.

Scripting (consumed in order, before any other check but the token):
- `error(code, *, channel=None, method=None, times=None)`: answer `{"ok": false, "error":
  code}` (e.g. "not_in_channel") to matching calls (`times` of them, or until `reset()`);
- `ratelimit(retry_after=1, *, channel=None, method=None, times=1)`: answer 429.
HTTP-level faults (500, reset, delay) use `fail(path_part, reply, times=None)` (FakeApi).

Reading: `messages(channel)` top-level messages as they are now (after updates), oldest
first; `message(channel, ts)`; `replies(channel, thread_ts)` a thread's replies;
`updates(channel, ts)` the chat.update bodies applied to a message; `calls_to("chat.update")`.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply

BOT_USER = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
TEAM_ID = "T0001"
_TS = re.compile(r"\d+\.\d+")


@dataclass
class _Script:
    reply: Reply
    channel: str | None
    method: str | None
    remaining: int | None


def slack_error(error: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"ok": False, "error": error}, headers)


class FakeSlackApi(FakeApi):
    name = "fake-slack-api"

    def __init__(
        self,
        token: str = "xoxb-test-token",  # noqa: S107
        channels: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.channels = channels
        """When set, the only channels that exist (others are `channel_not_found`)."""
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> message
        self._replies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._updates: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._foreign: set[tuple[str, str]] = set()
        self._counters: dict[str, itertools.count[int]] = {}
        self._slack_scripts: list[_Script] = []
        self._script_lock = threading.Lock()

    # scripting and seeding ----------------------------------------------------------

    def error(
        self,
        code: str,
        *,
        channel: str | None = None,
        method: str | None = None,
        times: int | None = None,
    ) -> None:
        with self._script_lock:
            self._slack_scripts.append(_Script(slack_error(code), channel, method, times))

    def ratelimit(
        self,
        retry_after: int = 1,
        *,
        channel: str | None = None,
        method: str | None = None,
        times: int | None = 1,
    ) -> None:
        reply = slack_error("ratelimited", 429, {"Retry-After": str(retry_after)})
        with self._script_lock:
            self._slack_scripts.append(_Script(reply, channel, method, times))

    def add_foreign_message(self, channel: str, text: str) -> str:
        """A message another app posted (chat.update refuses it); returns its ts."""
        with self._lock:
            ts = self._next_ts(channel)
            message = {"type": "message", "text": text, "user": "U0SOMEONE", "ts": ts}
            self._messages[(channel, ts)] = message
            self._foreign.add((channel, ts))
            return ts

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._messages.clear()
            self._replies.clear()
            self._updates.clear()
            self._foreign.clear()
            self._counters.clear()
        with self._script_lock:
            self._slack_scripts.clear()

    # reading ------------------------------------------------------------------------

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            found = [m for (c, _), m in self._messages.items() if c == channel]
            return [dict(m) for m in sorted(found, key=lambda m: _ts_key(m["ts"]))]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._messages.get((channel, ts))
            return None if found is None else dict(found)

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._replies.get((channel, thread_ts), [])]

    def updates(self, channel: str, ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(u) for u in self._updates.get((channel, ts), [])]

    # requests -----------------------------------------------------------------------

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        method = call.path.removeprefix("/api/")
        args = _arguments(call)
        token = _token(call, args)
        if token is None:
            return slack_error("not_authed")
        if token != self.token:
            return slack_error("invalid_auth")
        slack_scripted = self._slack_scripted(method, args.get("channel"))
        if slack_scripted is not None:
            return slack_scripted
        if method == "auth.test":
            return self._ok(
                call,
                team="Fake Team",
                user="revyl-relay",
                team_id=TEAM_ID,
                user_id=BOT_USER,
                bot_id=BOT_ID,
                url="https://fake.slack.com/",
            )
        if method not in ("chat.postMessage", "chat.update"):
            return slack_error("unknown_method", 404)
        channel = args.get("channel")
        if not channel or (self.channels is not None and channel not in self.channels):
            return slack_error("channel_not_found")
        if not any(args.get(key) for key in ("text", "blocks", "attachments")):
            return slack_error("no_text")
        if method == "chat.update":
            return self._update(call, channel, args)
        return self._post(call, channel, args)

    def _post(self, call: RecordedCall, channel: str, args: dict[str, Any]) -> Reply:
        thread_ts = args.get("thread_ts")
        if thread_ts is not None and not _TS.fullmatch(str(thread_ts)):
            return slack_error("invalid_thread_ts")
        with self._lock:
            ts = self._next_ts(channel)
            message = _message(args, ts)
            if thread_ts is None:
                self._messages[(channel, ts)] = message
            else:
                message["thread_ts"] = str(thread_ts)
                self._replies.setdefault((channel, str(thread_ts)), []).append(message)
        return self._ok(call, channel=channel, ts=ts, message=message)

    def _update(self, call: RecordedCall, channel: str, args: dict[str, Any]) -> Reply:
        ts = str(args.get("ts") or "")
        with self._lock:
            message = self._messages.get((channel, ts))
            if message is None:
                return slack_error("message_not_found")
            if (channel, ts) in self._foreign:
                return slack_error("cant_update_message")
            changed: dict[str, Any] = {
                k: args[k] for k in ("text", "blocks", "attachments") if k in args
            }
            message.update(changed, edited={"user": BOT_USER, "ts": self._next_ts(channel)})
            self._updates.setdefault((channel, ts), []).append(dict(args))
            answer = dict(message)
        return self._ok(call, channel=channel, ts=ts, text=answer.get("text"), message=answer)

    # helpers ------------------------------------------------------------------------

    def _slack_scripted(self, method: str, channel: Any) -> Reply | None:
        with self._script_lock:
            for script in self._slack_scripts:
                if script.remaining == 0:
                    continue
                if script.method not in (None, method) or script.channel not in (None, channel):
                    continue
                if script.remaining is not None:
                    script.remaining -= 1
                return script.reply
        return None

    def _next_ts(self, channel: str) -> str:
        counter = self._counters.setdefault(channel, itertools.count(1))
        return f"{int(time.time())}.{next(counter):06d}"

    @staticmethod
    def _ok(call: RecordedCall, **fields: Any) -> Reply:
        call.started = True
        return json_reply(200, {"ok": True, **fields})


def _arguments(call: RecordedCall) -> dict[str, Any]:
    if isinstance(call.json, dict):
        return call.json
    if call.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(call.body.decode("utf-8", "replace")))
    return dict(call.query)


def _token(call: RecordedCall, args: dict[str, Any]) -> str | None:
    header = call.headers.get("authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ")
    token = args.get("token")
    return str(token) if token else None


def _message(args: dict[str, Any], ts: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "message",
        "text": args.get("text", ""),
        "user": BOT_USER,
        "bot_id": BOT_ID,
        "ts": ts,
    }
    for key in ("blocks", "attachments"):
        if key in args:
            message[key] = args[key]
    return message


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, sequence = ts.partition(".")
    return int(seconds), int(sequence)
