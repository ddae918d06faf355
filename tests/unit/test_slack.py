"""Slack slash commands, the pure parts: signatures, the form, command words, the plan of a
`run`, Block Kit rendering, the 3-second hand-off, and the refusals (which do no I/O)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest

from relay.chatops import Reply, ResponseUrl, plan_run, split_command, within
from relay.errors import BadRequest, ConfigError, Unauthorized
from relay.models import Execution, RelayResponse
from relay.pipeline import Relay
from relay.plugins import parse_config
from relay.revyl import sansio
from relay.revyl.client import RequestsRevylClient
from relay.routing import plan_event
from relay.sandbox.fakes._http import RecordedCall
from relay.sandbox.fakes._http import Reply as HTTPReply
from relay.sandbox.fakes.slack_response_url import FakeSlackResponseUrl
from relay.sandbox.net import closed_port_url
from relay.secrets import SecretManagerBackend, Secrets
from relay.slack_blocks import (
    code,
    link,
    mention,
    notice,
    routes_list,
    run_pending,
    run_result,
    sections,
    status_result,
    usage,
)
from relay.sources import Delivery
from relay.sources.slack import AllowList, SlackSource, read_form
from relay.stores.memory import MemoryEventStore
from relay.tasks.local import LocalTaskQueue
from relay.wiring import assemble
from tests.payloads import payload

SAMPLE_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documentation example secret
SAMPLE_TIMESTAMP = 1764340000
SAMPLE_SIGNATURE = "v0=1782deca9f04e3cbd0a56426ddde7794eaaf927afcb8ac3a1b01bb9a49c53888"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
T1, T2, W1 = (
    "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
    "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7",
    "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928",
)
BUILD_ID = "b0a7c9e2-1d3f-4a5b-8c6d-7e8f9a0b1c2d"
CONFIG = f"""
revyl: {{token: {{env: UNIT_TEST_NO_SUCH_VARIABLE}}}}
sources:
  slack:
    secret: {{env: SLACK_SIGNING_SECRET}}
    team_id: T0001
    allow: {{users: [U_ALLOWED], channels: [C_QA]}}
    reply_within: 30  # the answer, never the hand-off, whatever the machine's load
routes:
  - name: ios-smoke
    when: {{platform: ios}}
    build: {{lookup: {{app_id: {APP}}}}}
    tests: [{T1}, {T2}]
    workflows: [{W1}]
  - name: attached
    tests: [{T1}]
  - name: only-workflows
    build: {{ingest: {{app_id: {APP}}}}}
    workflows: [{W1}]
  - name: android-workflows
    when: {{platform: android}}
    build: {{ingest: {{app_id: {APP}}}}}
    workflows: [{W1}]
"""


def config():
    return parse_config(CONFIG)


def source() -> SlackSource:
    return SlackSource("slack", config().sources["slack"])


def delivery(body: bytes, headers: dict[str, str], received_at: float) -> Delivery:
    return Delivery({k.lower(): v for k, v in headers.items()}, body, received_at)


# signatures


def sample_headers(signature: str = SAMPLE_SIGNATURE) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(SAMPLE_TIMESTAMP), "X-Slack-Signature": signature}


def test_the_shared_sample_verifies():
    body = payload("slack-slash-command.txt")
    source().verify(delivery(body, sample_headers(), SAMPLE_TIMESTAMP + 60), SAMPLE_SECRET)


def test_slacks_published_example_verifies():
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    source().verify(delivery(body, headers, 1531420618), SAMPLE_SECRET)


@pytest.mark.parametrize(
    ("headers", "received_at", "message"),
    [
        (sample_headers(), SAMPLE_TIMESTAMP + 301, "outside the 5 minute tolerance"),
        (sample_headers(), SAMPLE_TIMESTAMP - 301, "outside the 5 minute tolerance"),
        (sample_headers("v0=" + "0" * 64), SAMPLE_TIMESTAMP, "signature verification failed"),
        (sample_headers(SAMPLE_SIGNATURE.upper()[:-1]), SAMPLE_TIMESTAMP, "verification failed"),
        ({"X-Slack-Signature": SAMPLE_SIGNATURE}, SAMPLE_TIMESTAMP, "missing"),
        ({"X-Slack-Request-Timestamp": str(SAMPLE_TIMESTAMP)}, SAMPLE_TIMESTAMP, "missing"),
        (
            {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": SAMPLE_SIGNATURE},
            SAMPLE_TIMESTAMP,
            "not a Unix time",
        ),
    ],
)
def test_bad_signatures_and_stale_timestamps_are_refused(headers, received_at, message):
    body = payload("slack-slash-command.txt")
    with pytest.raises(Unauthorized, match=message) as caught:
        source().verify(delivery(body, headers, received_at), SAMPLE_SECRET)
    assert SAMPLE_SIGNATURE[3:] not in caught.value.message


def test_a_changed_byte_of_the_body_fails():
    body = payload("slack-slash-command.txt").replace(b"smoke", b"smoky")
    with pytest.raises(Unauthorized):
        source().verify(delivery(body, sample_headers(), SAMPLE_TIMESTAMP), SAMPLE_SECRET)


def test_sign_is_the_inverse_of_verify():
    body = b"team_id=T0001&text=run+ios-smoke"
    headers = source().sign(body, "s3cret", 1_800_000_000.7, "ignored")
    assert headers["x-slack-request-timestamp"] == "1800000000"
    assert headers["x-slack-signature"].startswith("v0=")
    source().verify(delivery(body, headers, 1_800_000_100), "s3cret")
    with pytest.raises(Unauthorized):
        source().verify(delivery(body, headers, 1_800_000_100), "other")


# the form


def form(**fields: str) -> bytes:
    base = {
        "team_id": "T0001",
        "channel_id": "C_QA",
        "user_id": "U_ALLOWED",
        "user_name": "jdoe",
        "command": "/revyl",
        "text": "help",
        "response_url": "https://hooks.slack.com/commands/T0001/1/x",
        "trigger_id": "111.222.abc",
    }
    return urlencode({**base, **fields}).encode()


def test_the_sample_form_is_read_and_keyed_by_trigger_id():
    event = source().parse(delivery(payload("slack-slash-command.txt"), {}, SAMPLE_TIMESTAMP))
    assert event.key == "slack:13345224609.738474920.8088930838d88f008e0"
    command = event.extra["command"]
    assert (command.team_id, command.user_id, command.channel_id) == (
        "T0001",
        "U2147483697",
        "C2147483705",
    )
    assert command.text == "android 2e7d9b41-6c3a-4f08-b5d2-7a1e9c0f3b56 --suite smoke"
    assert command.response_url.startswith("https://hooks.slack.com/commands/T0001/")
    assert event.build is None


def test_the_same_text_twice_is_two_events():
    first = source().parse(delivery(form(trigger_id="1.1.a"), {}, 0))
    second = source().parse(delivery(form(trigger_id="1.1.b"), {}, 0))
    assert first.key != second.key


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b"team_id=T0001&user_id=U1&channel_id=C1",  # no trigger_id
        b"payload=%7B%22type%22%3A%22block_actions%22%7D",  # interactivity, not a command
    ],
)
def test_malformed_forms_are_bad_requests(body):
    with pytest.raises(BadRequest):
        read_form(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run ios-smoke 2.4.0 (187)", ("run", "ios-smoke 2.4.0 (187)")),
        ("  RUN   ios-smoke  ", ("run", "ios-smoke")),
        ("run ios-smoke 1.0 &lt;beta&gt; &amp; more", ("run", "ios-smoke 1.0 <beta> & more")),
        ("", ("", "")),
        ("status 3f1c", ("status", "3f1c")),
    ],
)
def test_command_words(text, expected):
    assert split_command(text) == expected


# config


@pytest.mark.parametrize(
    ("slack", "message"),
    [
        ("{secret: {env: S}}", "team_id: Field required"),
        ("{secret: {env: S}, team_id: T1, allow: {}}", "give `users`, `channels` or both"),
        ("{secret: {env: S}, team_id: T1, allow: {users: []}}", "allow.users"),
        ("{secret: {env: S}, team_id: T1, allow: {groups: [G1]}}", "allow: unknown key `groups`"),
        ("{secret: {env: S}, team_id: T1, reply_within: 0}", "reply_within"),
        ("{secret: {env: S}, team_id: T1, response_url_prefix: hooks}", "not a URL prefix"),
    ],
)
def test_bad_slack_settings_name_the_key(slack, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(f"sources:\n  slack: {slack}\n")


def test_a_bare_host_prefix_cannot_admit_a_lookalike_host():
    settings = parse_config(
        "sources:\n  slack: {secret: {env: S}, team_id: T1, "
        "response_url_prefix: 'https://hooks.slack.com'}\n"
    ).sources["slack"]
    assert settings.response_url_prefix == "https://hooks.slack.com/"
    poster = ResponseUrl(settings.response_url_prefix)
    assert poster.allowed("https://hooks.slack.com/commands/T1/2/x")
    assert not poster.allowed("https://hooks.slack.com.evil.example/commands/T1/2/x")
    assert not poster.allowed("http://hooks.slack.com/commands/T1/2/x")
    assert not poster.allowed(None)


@pytest.mark.parametrize(
    ("allow", "user", "channel", "admitted"),
    [
        ({"users": ["U1"]}, "U1", "C9", True),
        ({"users": ["U1"]}, "U2", "C9", False),
        ({"channels": ["C1"]}, "U9", "C1", True),
        ({"channels": ["C1"]}, "U9", "C2", False),
        ({"users": ["U1"], "channels": ["C1"]}, "U1", "C1", True),
        ({"users": ["U1"], "channels": ["C1"]}, "U1", "C2", False),
        ({"users": ["U1"], "channels": ["C1"]}, "U2", "C1", False),
    ],
)
def test_every_given_allow_list_must_admit(allow, user, channel, admitted):
    assert AllowList(**allow).admits(user, channel) is admitted


# what `run` starts


def test_run_with_a_label_looks_it_up_in_the_routes_app():
    route = config().route("ios-smoke")
    plan = plan_run(route, "2.4.0 (187)", source="slack", actor="jdoe")
    assert plan.route.build.mode == "lookup"
    assert plan.build.platform == "ios"  # from when.platform: workflows pin per platform
    assert plan.build.system == "slack"
    (route_plan,) = plan_event([plan.route], plan.build, ("ios-smoke",))
    assert route_plan.problem is None
    assert route_plan.version_label == "2.4.0 (187)"
    assert route_plan.route.build.app_id == APP
    assert len(route_plan.targets) == 3


def test_a_label_with_braces_is_taken_literally():
    plan = plan_run(config().route("ios-smoke"), "1.0 {beta}", source="slack", actor="u")
    (route_plan,) = plan_event([plan.route], plan.build, ("ios-smoke",))
    assert route_plan.version_label == "1.0 {beta}"


def test_an_ingest_route_looks_labels_up_in_its_ingest_app():
    plan = plan_run(config().route("android-workflows"), "2.4.0 (187)", source="slack", actor="u")
    assert plan.route.build.lookup.app_id == APP
    (route_plan,) = plan_event([plan.route], plan.build, ("android-workflows",))
    assert route_plan.problem is None


def test_run_without_a_build_uses_the_attached_builds():
    plan = plan_run(config().route("ios-smoke"), "", source="slack", actor="u")
    assert plan.route.build.mode == "attached"
    (route_plan,) = plan_event([plan.route], plan.build, ("ios-smoke",))
    assert route_plan.problem is None
    assert route_plan.version_label is None
    assert len(route_plan.targets) == 3


def test_run_with_a_build_id_runs_the_tests_on_it_and_says_why_workflows_are_left_out():
    plan = plan_run(config().route("ios-smoke"), BUILD_ID.upper(), source="slack", actor="u")
    assert plan.build.build_version_id == BUILD_ID
    assert plan.route.workflows == []
    assert "workflow" in plan.notes[0]
    (route_plan,) = plan_event([plan.route], plan.build, ("ios-smoke",))
    assert route_plan.problem is None
    assert [t.test_id for t in route_plan.targets] == [T1, T2]


@pytest.mark.parametrize(
    ("route", "wanted", "reason"),
    [
        ("only-workflows", BUILD_ID, "only workflows"),
        ("attached", "2.4.0 (187)", "no Revyl app"),
        ("ios-smoke", "x" * 201, "at most 200"),
        ("only-workflows", "2.4.0 (187)", "set `when.platform`"),
    ],
)
def test_runs_that_cannot_be_planned_say_why(route, wanted, reason):
    plan = plan_run(config().route(route), wanted, source="slack", actor="u")
    assert isinstance(plan, str)
    assert reason in plan


# the hand-off after the budget


def reply(reason: str) -> Reply:
    body = RelayResponse(decision="ignored", reason=reason)
    return Reply(body, {"text": reason})


def test_work_done_within_the_budget_is_the_answer():
    late: list[Reply] = []
    assert within(30, lambda: reply("fast"), late.append).body.reason == "fast"
    assert late == []


def test_work_not_done_within_the_budget_is_handed_to_late():
    release, delivered = threading.Event(), threading.Event()
    late: list[Reply] = []

    def slow() -> Reply:
        release.wait(10)
        return reply("slow")

    def hand_off(result: Reply) -> None:
        late.append(result)
        delivered.set()

    assert within(0.01, slow, hand_off) is None
    release.set()
    assert delivered.wait(10)
    assert [r.body.reason for r in late] == ["slow"]


# Block Kit

E1, E2 = "3f2b1c0d-9e8a-4b7c-8d6e-5f4a3b2c1d0e", "4a3b2c1d-0e9f-4a8b-9c7d-6e5f4a3b2c1d"


def started(kind: str, ident: str, execution_id: str) -> Execution:
    return Execution(
        route="ios-smoke",
        **{f"{kind}_id": ident},
        execution_id=execution_id,
        status="queued",
        report_url=f"https://app.revyl.ai/{kind}s/report?taskId={execution_id}",
    )


def test_run_result_names_who_the_build_and_every_execution():
    body = RelayResponse(
        event="slack:1",
        decision="partial",
        build={"build_version_id": BUILD_ID},
        executions=[
            started("test", T1, E1),
            started("workflow", W1, E2),
            Execution(
                route="ios-smoke",
                test_id=T2,
                outcome="failed",
                error="Revyl refused (402): <no credits>",
            ),
            Execution(route="ios-smoke", test_id=T2, outcome="unknown", error="timeout"),
        ],
    )
    message = run_result("/revyl", "U1", "ios-smoke", "`2.4.0 (187)`", body, ["a note"])
    assert message["response_type"] == "in_channel"
    assert message["text"] == "<@U1> ran ios-smoke on 2.4.0 (187): 2 started, 2 failed"
    rendered = str(message["blocks"])
    assert "<@U1> ran *ios-smoke* on `2.4.0 (187)`" in rendered
    assert f"<https://app.revyl.ai/tests/report?taskId={E1}|report>" in rendered
    assert f"<https://app.revyl.ai/workflows/report?taskId={E2}|report>" in rendered
    assert f"`{E1}`" in rendered
    assert f"`{E2}`" in rendered
    assert "&lt;no credits&gt;" in rendered  # Revyl's words cannot become a link or mention
    assert "may have started" in rendered
    assert "a note" in rendered
    assert BUILD_ID in rendered


def test_a_dry_run_is_shown_only_to_the_asker():
    body = RelayResponse(
        decision="dry_run",
        executions=[Execution(route="r", test_id=T1, outcome="planned")],
    )
    message = run_result("/revyl", "U1", "r", "x", body)
    assert message["response_type"] == "ephemeral"
    assert "would start" in message["text"]


def test_long_answers_are_split_into_sections_under_slacks_limit():
    blocks = sections(f"line {i} " + "x" * 90 for i in range(100))
    assert len(blocks) > 1
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks)
    assert sum(b["text"]["text"].count("line ") for b in blocks) == 100


def test_status_result_has_status_progress_verdict_and_link():
    data = {
        "status": "running",
        "progress": 40.0,
        "total_steps": 3,
        "steps_completed": 1,
        "current_step": "Open the app",
    }
    message = status_result("test", E1, data, f"https://app.revyl.ai/tests/report?taskId={E1}")
    assert message["text"] == (
        f"Test execution {E1}: running, 40%, running · https://app.revyl.ai/tests/report?taskId={E1}"
    )
    rendered = message["blocks"][0]["text"]["text"]
    assert "step 1/3 (Open the app)" in rendered
    assert f"<https://app.revyl.ai/tests/report?taskId={E1}|Open the report>" in rendered


def test_usage_and_routes_lists():
    assert "/revyl run &lt;route&gt;" in usage("/revyl")["text"]
    assert usage("/revyl")["response_type"] == "ephemeral"
    listed = routes_list("/revyl", config().routes)
    assert listed["text"] == (
        "Routes you can run: ios-smoke, attached, only-workflows, android-workflows"
    )
    rendered = str(listed["blocks"])
    assert T1 in rendered
    assert W1 in rendered


# answers that start nothing (a real Relay: refusals make no call at all)


@pytest.fixture
def relay() -> Relay:
    cfg = config()
    relay = Relay(
        cfg,
        secrets=Secrets(SecretManagerBackend("http://127.0.0.1:9"), project="p", ttl_seconds=60),
        revyl=RequestsRevylClient(cfg.revyl),
        store=MemoryEventStore(60),
        dry_run=True,
    )
    return assemble(relay, LocalTaskQueue())


def ask(relay: Relay, text: str, **fields: str):
    slack = relay.sources["slack"]
    event = slack.parse(delivery(form(text=text, **fields), {}, time.time()))
    return relay.listeners["slack"](event)


@pytest.mark.parametrize(
    ("text", "fields", "says"),
    [
        ("run ios-smoke", {"team_id": "T9999"}, "does not serve this Slack workspace"),
        ("run ios-smoke", {"user_id": "U_OTHER"}, "allow-list"),
        ("run ios-smoke", {"channel_id": "C_RANDOM"}, "allow-list"),
        ("routes", {"user_id": "U_OTHER"}, "allow-list"),
        ("run nope", {}, "There is no route named 'nope'. Routes: ios-smoke, attached"),
        ("run attached 2.4.0", {}, "no Revyl app"),
        ("deploy prod", {}, "I don't know the command 'deploy'"),
        ("run", {}, "Which route?"),
        ("status not-an-id", {}, "needs an execution id"),
    ],
)
def test_refusals_are_ephemeral_200s(relay, text, fields, says):
    answer = ask(relay, text, **fields)
    assert answer.status == 200
    assert answer.body.decision == "rejected"
    assert answer.reply["response_type"] == "ephemeral"
    assert says in answer.reply["text"] + str(answer.reply["blocks"])


def test_help_and_empty_text_give_usage(relay):
    for text in ("help", ""):
        answer = ask(relay, text)
        assert answer.reply["response_type"] == "ephemeral"
        assert "run &lt;route&gt; [&lt;version label&gt;" in answer.reply["text"]
        assert answer.body.decision == "ignored"


def test_a_dry_run_run_plans_without_calling_anything(relay):
    answer = ask(relay, "run ios-smoke 2.4.0 (187)")
    assert answer.status == 200
    assert answer.body.decision == "dry_run"
    assert answer.body.plan[0]["version_label"] == "2.4.0 (187)"
    assert "3 would start" in answer.reply["text"]


def test_status_in_dry_run_says_there_is_no_token(relay):
    answer = ask(relay, f"status {BUILD_ID}")
    assert "No Revyl token" in answer.reply["text"]


def block_texts(message: dict) -> list[str]:
    texts = []
    for block in message["blocks"]:
        texts.append(block.get("text", {}).get("text", ""))
        texts += [element["text"] for element in block.get("elements", [])]
    return texts


def test_no_stray_angle_brackets_reach_slack():
    """In mrkdwn `<…>` is a mention or a link: only the relay's own may appear."""
    import re

    body = RelayResponse(
        decision="triggered",
        build={"build_version_id": BUILD_ID},
        executions=[started("test", T1, E1)],
    )
    messages = [
        usage("/revyl", "I don't know <that>."),
        routes_list("/revyl", config().routes),
        run_result("/revyl", "U1", "r<x>", code("<label>"), body),
        status_result("test", E1, {"status": "failed", "error_message": "<b>"}, "https://x"),
    ]
    for message in messages:
        for text in block_texts(message):
            assert re.findall(r"<(?!@U1>|https://)[^>]*>", text) == [], text


class FailingSlack(FakeSlackResponseUrl):
    """Slack's response_url answering 503 to every follow-up."""

    def handle(self, call: RecordedCall) -> HTTPReply:
        return HTTPReply(status=503, body=b"unavailable", content_type="text/html")


def test_a_follow_up_slack_failed_is_tried_twice_and_its_last_status_returned():
    with FailingSlack() as slack:
        poster = ResponseUrl(slack.prefix, timeout=2)
        assert poster.post(slack.response_url("T1"), {"text": "hi"}) == 503
        assert len(slack.calls) == 2


def test_a_follow_up_to_an_unreachable_slack_gives_none():
    assert ResponseUrl("http://", timeout=2).post(closed_port_url(), {"text": "hi"}) is None


def test_a_follow_up_slack_took_is_posted_once():
    with FakeSlackResponseUrl() as slack:
        poster = ResponseUrl(slack.prefix, timeout=2)
        assert poster.post(slack.response_url("T1"), {"text": "hi"}) == 200
        assert slack.posts() == [{"text": "hi"}]


HOSTILE = "abc>|<https://evil.example/|click here"


def test_an_execution_id_from_revyl_cannot_put_a_link_in_the_channel():
    executed = Execution(
        route="ios-smoke",
        test_id=T1,
        execution_id=HOSTILE,
        status="queued>|<https://evil.example/|status",
        report_url=sansio.report_url("https://app.revyl.ai", "test", HOSTILE),
    )
    body = RelayResponse(decision="triggered", executions=[executed])
    messages = [
        run_result("/revyl", "U1", "ios-smoke", code("2.4.0"), body),
        status_result("test", HOSTILE, {"status": HOSTILE}, executed.report_url or ""),
    ]
    for message in messages:
        for text in [message["text"], *block_texts(message)]:
            assert "<https://evil" not in text, text
            assert "|click here>" not in text, text
    assert "no report link" in str(messages[0]["blocks"])  # not a UUID: no link is made


def test_link_escapes_both_parts_and_keeps_the_url_whole():
    assert link("https://x/?a=1&b=<2>|3", "a <b> & c") == (
        "<https://x/?a=1&amp;b=&lt;2&gt;%7C3|a &lt;b&gt; &amp; c>"
    )
    assert sansio.report_url("https://app.revyl.ai", "workflow", "a b/c") == (
        "https://app.revyl.ai/workflows/report?taskId=a%20b%2Fc"
    )


def test_only_slack_user_ids_become_mentions():
    assert mention("U0ALLOWED") == "<@U0ALLOWED>"
    assert mention("W12AB") == "<@W12AB>"
    assert mention("U1> <!channel") == "U1&gt; &lt;!channel"
    assert run_pending("<!here>", "r", "b", 1, 0)["text"].startswith("&lt;!here&gt; is running")


def test_fallback_texts_are_escaped_like_the_blocks():
    refused = notice("There is no route named '<https://evil.example|x>'.")
    assert refused["text"] == "There is no route named '&lt;https://evil.example|x&gt;'."
