"""The Slack targets, pure: the messages (escaped, links only the relay's), the Web API's
answers, the response_url's answers and the settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from relay.config import SecretRef
from relay.models import Execution
from relay.reports._common import HttpAnswer
from relay.reports._slack import (
    Keys,
    SlackRefused,
    failures_message,
    link,
    mention,
    read_answer,
    started_message,
    verdict_message,
)
from relay.reports.base import Refused
from relay.reports.slack import SlackSettings, read_response_url_answer
from relay.tasks import RetryLater
from relay.verdicts.check import Check, new_check

T1, T2 = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7"
BUILD = {
    "version": "2.4.0",
    "build_number": "187",
    "platform": "android",
    "branch": "main",
    "commit": "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d",
    "source": "eas",
}
KEYS = Keys("reports.team.token", "reports.team.channel", "reports.team.api_url")
NOW = 1_780_000_000.0


def report(test: str) -> str:
    return f"https://app.revyl.ai/tests/report?taskId=x-{test[:4]}"


def check(build=None, route: str = "android-e2e") -> Check:
    executions = [
        Execution(route=route, test_id=t, execution_id=f"x-{t[:4]}", report_url=report(t))
        for t in (T1, T2)
    ]
    return new_check(
        event_key="eas:b:finished",
        route=route,
        build=BUILD if build is None else build,
        executions=executions,
        report_to=["team"],
        now=NOW,
        give_up_seconds=60,
    )


def failed(error: str = "login-flow failed", base: Check | None = None) -> Check:
    base = base or check()
    runs = {
        key: run.model_copy(
            update={"outcome": "failed", "error": error}
            if run.test_id == T2
            else {"outcome": "passed"}
        )
        for key, run in base.runs.items()
    }
    return base.model_copy(update={"verdict": "failed", "runs": runs})


def texts(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_the_started_message_names_the_route_the_build_and_each_run():
    message = started_message(check())
    assert message["text"] == "android-e2e: 2 runs started on 2.4.0 (187)"
    shown = texts(message)
    assert "*android-e2e*: 2 runs started on `2.4.0 (187)`" in shown
    assert f"<{report(T1)}|report>" in shown
    assert f"<{report(T2)}|report>" in shown
    assert "test `0f8f6c1a`" in shown
    assert "android · main · `9f2c4e1` · from eas" in shown


def test_the_verdict_shows_the_failure_and_the_thread_reply_names_the_failed_test():
    message = verdict_message(failed())
    assert message["text"].startswith("android-e2e failed: 1 of 2 passed — test 1a9e7d2b failed")
    assert ":x: *android-e2e* failed: 1 of 2 passed" in texts(message)
    assert ":white_check_mark: test `0f8f6c1a` passed" in texts(message)
    reply = failures_message(failed())
    assert reply["text"] == f"1 of 2 did not pass: test {T2}"
    assert f"test `{T2}` failed" in texts(reply)
    assert "`login-flow failed`" in texts(reply)
    assert f"<{report(T2)}|report>" in texts(reply)


def test_a_passed_verdict_and_an_error():
    passed = check().model_copy(update={"verdict": "passed"})
    runs = {k: r.model_copy(update={"outcome": "passed"}) for k, r in passed.runs.items()}
    message = verdict_message(passed.model_copy(update={"runs": runs}))
    assert ":white_check_mark: *android-e2e* passed: 2 of 2 passed" in texts(message)
    errored = check().model_copy(update={"verdict": "error"})
    assert ":warning: *android-e2e* error" in texts(verdict_message(errored))


HOSTILE = "<!channel> <https://evil.example|click> & *bold* @here https://evil.example/x"


def test_text_from_revyl_or_a_payload_never_becomes_a_link_a_mention_or_formatting():
    build = {**BUILD, "branch": HOSTILE, "version": "<!here>", "source": "<@U123>"}
    hostile = failed(HOSTILE, check(build, route="r<!channel>"))
    for message in (started_message(hostile), verdict_message(hostile), failures_message(hostile)):
        shown = texts(message) + message["text"]
        assert "<!" not in shown
        assert "<@" not in shown
        assert "|click>" not in shown
        assert "<https://evil" not in shown
        assert "&lt;!channel&gt;" in shown
        for block in message["blocks"]:
            objects = [block["text"]] if "text" in block else block["elements"]
            assert all(o["verbatim"] is True for o in objects)  # no auto links, no @here
    assert "`&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; *bold*" in texts(
        failures_message(hostile)
    )


def test_the_only_links_are_http_urls_made_safe_for_slacks_syntax():
    assert link("https://app.revyl.ai/tests/report?taskId=a|b>c", "report") == (
        "<https://app.revyl.ai/tests/report?taskId=a%7Cb%3Ec|report>"
    )
    assert link("https://a.example/r?x=1&y=2", "r") == "<https://a.example/r?x=1&amp;y=2|r>"
    assert link("javascript:alert(1)", "report") == "report"
    assert link(None, "report") == "report"


def test_only_a_user_id_is_mentioned():
    assert mention("U0ALLOWED") == "<@U0ALLOWED> "
    assert mention("U0|<!channel>") == ""
    assert mention(None) == ""
    assert verdict_message(failed(), mention("U0ALLOWED"))["blocks"][0]["text"]["text"].startswith(
        ":x: <@U0ALLOWED> *android-e2e* failed"
    )


def test_with_failures_the_verdict_holds_the_errors_in_one_message():
    assert "`login-flow failed`" in texts(verdict_message(failed(), with_failures=True))
    assert "login-flow failed" not in texts(verdict_message(failed()))


def test_fifty_blocks_at_most():
    executions = [
        Execution(route="r", test_id=f"{i:08d}-0000-4000-8000-000000000000", execution_id=str(i))
        for i in range(400)
    ]
    big = new_check(
        event_key="k",
        route="r",
        build=BUILD,
        executions=executions,
        report_to=[],
        now=NOW,
        give_up_seconds=1,
    )
    assert len(started_message(big)["blocks"]) <= 50


def slack(status: int = 200, body: object = None, **headers: str) -> HttpAnswer:
    return HttpAnswer(status, headers, json.dumps(body).encode() if body is not None else b"")


def read(answer: HttpAnswer):
    return read_answer("chat.postMessage", answer, NOW, keys=KEYS, channel="C0123ABCD")


def test_ok_is_the_answers_data():
    assert read(slack(body={"ok": True, "ts": "1.000001", "channel": "C0123ABCD"}))["ts"] == (
        "1.000001"
    )


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("not_in_channel", "invite it to the channel"),
        ("channel_not_found", "check reports.team.channel is a channel id"),
        ("invalid_auth", "check reports.team.token"),
        ("not_authed", "check reports.team.token"),
        ("missing_scope", "add chat:write"),
        ("msg_too_long", "Slack refused chat.postMessage (msg_too_long)"),
    ],
)
def test_a_refusal_says_what_to_fix(error, says):
    with pytest.raises(SlackRefused) as refused:
        read(slack(body={"ok": False, "error": error}))
    assert says in refused.value.message
    assert refused.value.code == error


def test_an_unknown_error_code_is_not_repeated_verbatim():
    with pytest.raises(SlackRefused) as refused:
        read(slack(body={"ok": False, "error": "<!channel> xoxb-secret-looking thing"}))
    assert refused.value.code == "unknown"


@pytest.mark.parametrize(
    ("answer", "after"),
    [
        (slack(429, {"ok": False, "error": "ratelimited"}, **{"Retry-After": "3"}), 3.0),
        (slack(503, None), None),
        (slack(200, {"ok": False, "error": "internal_error"}), None),
        (slack(200, None), None),
    ],
)
def test_rate_limits_and_slack_failures_are_retried(answer, after):
    with pytest.raises(RetryLater) as retry:
        read(answer)
    assert retry.value.after == after


def test_a_redirect_is_not_followed():
    with pytest.raises(Refused, match=r"check reports\.team\.api_url"):
        read(HttpAnswer(302, {"Location": "https://elsewhere.example"}))


def test_the_response_urls_answers():
    assert read_response_url_answer(HttpAnswer(200, {}, b"ok"), NOW, "slack").detail
    for said in (b"used_url", b"expired_url"):
        with pytest.raises(Refused, match=r"set sources\.slack\.bot_token") as refused:
            read_response_url_answer(HttpAnswer(404, {}, said), NOW, "slack")
        assert said.decode() in refused.value.message
    with pytest.raises(RetryLater):
        read_response_url_answer(HttpAnswer(500, {}, b""), NOW, "slack")


def settings(**fields) -> SlackSettings:
    return SlackSettings(type="slack", token=SecretRef(env="S"), **fields)


def test_settings():
    assert settings(channel="C0123ABCD").on is None
    assert settings(channel="C0123ABCD", on=["failed", "error"]).on == ["failed", "error"]
    for bad in ({"channel": "#mobile-qa"}, {"channel": "C0123ABCD", "on": []}):
        with pytest.raises(ValidationError):
            settings(**bad)
    with pytest.raises(ValidationError):
        settings(channel="C0123ABCD", on=["green"])
    with pytest.raises(ValidationError, match="https"):
        settings(channel="C0123ABCD", api_url="http://slack.example/api")


def test_a_bare_on_key_in_yaml_is_read_as_on():
    from relay.plugins import parse_config

    config = parse_config(
        "sources: {eas: {secret: {env: E}}}\n"
        "reports:\n"
        "  team:\n"
        "    type: slack\n"
        "    channel: C0123ABCD\n"
        "    token: {env: S}\n"
        "    on: [failed, error]\n"
    )
    assert config.reports["team"].on == ["failed", "error"]  # type: ignore[attr-defined]


def test_reports_may_not_take_a_name_reserved_for_command_replies():
    from relay.errors import ConfigError
    from relay.plugins import parse_config

    with pytest.raises(ConfigError, match="names starting with '@' are the relay's own"):
        parse_config(
            "sources: {slack: {secret: {env: S}, team_id: T0001}}\n"
            "verdicts: {}\n"
            "reports: {'@slack': {type: slack, channel: C0123ABCD, token: {env: S}}}\n"
        )


def reply_target(**fields):
    from relay.reports.slack import SlashCommandReply, SlashCommandReplySettings

    settings = SlashCommandReplySettings(source="slack", **fields)
    return SlashCommandReply("@slack", settings, secrets=None)  # type: ignore[arg-type]


def test_a_verdict_after_the_response_urls_30_minutes_is_undeliverable():
    origin = {
        "source": "slack",
        "channel_id": "C0MOBILEQA",
        "user_id": "U0ALLOWED",
        "response_url": "https://hooks.slack.com/commands/T0001/1/x",
        "received_at": NOW - 31 * 60,
    }
    late = failed().model_copy(update={"origin": origin})
    target = reply_target()
    assert target.report("started", late, {}).reason.startswith("the command's own answer")
    with pytest.raises(Refused, match=r"undeliverable: .* set sources\.slack\.bot_token"):
        target.to_response_url(origin, verdict_message(late), NOW)


def test_a_response_url_outside_the_prefix_is_never_posted_to():
    origin = {"response_url": "https://evil.example/hook", "received_at": NOW}
    with pytest.raises(Refused, match="response_url_prefix"):
        reply_target().to_response_url(origin, verdict_message(failed()), NOW)
