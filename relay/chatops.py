"""Chat-ops: what the Slack source's slash commands do once they are verified and parsed.

    /revyl run <route> [<version label> | <build_version_id>]
    /revyl status <execution id>
    /revyl routes
    /revyl help

Slack waits 3 seconds for the answer. A command still working after `reply_within` seconds is
answered at once with what is known; its result is handed to the task queue when it is ready,
as a `slack.follow_up` task that posts it to the command's `response_url` (the work itself runs
on a thread of this instance, which needs CPU after the response: see docs/slack.md).

`relay/sources/slack.py` is the source (form, signature, event: pure); this module is the part
that needs the Relay, threads and HTTP, registered by `relay.wiring` as the listener of each
Slack source. `relay/slack_blocks.py` renders the messages.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relay import answers
from relay import slack_blocks as blocks
from relay.answers import Answer
from relay.config import AppRef, BuildSpec, Route
from relay.errors import RelayError
from relay.models import Build, Event, Platform, RelayResponse
from relay.pipeline import Relay
from relay.revyl import sansio
from relay.revyl.sansio import Refused, RevylError
from relay.sources._api import session_without_redirects
from relay.sources.slack import SlackSettings, SlashCommand
from relay.tasks import Task, TaskQueue

log = logging.getLogger("relay")

MAX_LABEL_LENGTH = 200
FOLLOW_UP_TIMEOUT = 10.0


def split_command(text: str) -> tuple[str, str]:
    """`run ios-smoke 2.4.0 (187)` → ("run", "ios-smoke 2.4.0 (187)"). Slack escapes &, <, >."""
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()
    verb, _, rest = text.partition(" ")
    return verb.lower(), rest.strip()


def as_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class RunPlan:
    """A route as `run` carries it out: its `build:` replaced by what the user asked for."""

    route: Route
    build: Build
    shown: str  # the build, as the answer names it (mrkdwn)
    notes: tuple[str, ...] = ()


def plan_run(route: Route, wanted: str, *, source: str, actor: str) -> RunPlan | str:
    """What `run <route> [wanted]` starts, or why it cannot. Pure.

    Nothing given: the tests' attached builds (workflows their own build settings).
    A UUID: that Revyl build for the tests; workflows, which pin builds by label, are left out.
    Anything else: a version label, looked up in the route's Revyl app (`lookup` or `ingest`).
    """
    platform: Platform | None = "ios" if route.when.platform == "ios" else None
    platform = "android" if route.when.platform == "android" else platform
    build = Build(source=source, system="slack", platform=platform, actor=actor)
    if not wanted:
        attached = route.model_copy(update={"build": BuildSpec()})
        return RunPlan(attached, build, "the tests' attached builds")
    version_id = as_uuid(wanted)
    if version_id:
        if not route.tests:
            return (
                f"{route.name} has only workflows, and workflows pin their build by version "
                "label: give the label instead of a build id"
            )
        notes: tuple[str, ...] = ()
        if route.workflows:
            notes = (
                f"{len(route.workflows)} workflow(s) of {route.name} not started: workflows pin "
                "their build by version label, so give the label to run them too",
            )
        tests_only = route.model_copy(update={"build": BuildSpec(), "workflows": []})
        pinned = build.model_copy(update={"build_version_id": version_id})
        return RunPlan(tests_only, pinned, f"Revyl build {blocks.code(version_id)}", notes)
    if len(wanted) > MAX_LABEL_LENGTH:
        return f"a version label is at most {MAX_LABEL_LENGTH} characters"
    app_id = route.build.app_id
    if app_id is None:
        return (
            f"{route.name} has no Revyl app to find build {wanted!r} in (its `build:` has no "
            "`lookup` or `ingest`): run it without a build, or give a build_version_id"
        )
    if route.workflows and platform is None:
        return (
            f"{route.name} runs workflows, which Revyl pins to a build per platform, and the "
            "route names no platform: set `when.platform` (ios or android) on the route"
        )
    literal = wanted.replace("{", "{{").replace("}", "}}")
    spec = BuildSpec(lookup=AppRef(app_id=app_id), version_label=literal)
    return RunPlan(route.model_copy(update={"build": spec}), build, blocks.code(wanted))


@dataclass(frozen=True)
class Reply:
    """One answer to Slack: `message` is sent, `body` is what the relay logs."""

    body: RelayResponse
    message: blocks.Message


@dataclass
class _Job:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    result: Reply | None = None
    late: bool = False


def within(
    seconds: float, work: Callable[[], Reply], late: Callable[[Reply], None]
) -> Reply | None:
    """Run `work` in a thread. Its reply if it is done within `seconds`; else None, and
    `late(reply)` is called from that thread once it is. `work` must not raise."""
    job = _Job()

    def run() -> None:
        reply = work()
        with job.lock:
            job.result, was_late = reply, job.late
            job.done.set()
        if was_late:
            late(reply)

    context = contextvars.copy_context()  # keeps the request's trace on the log lines
    threading.Thread(target=context.run, args=(run,), name="slack-command", daemon=True).start()
    job.done.wait(max(0.0, seconds))
    with job.lock:
        if job.done.is_set():
            return job.result
        job.late = True
        return None


class ResponseUrl:
    """Posts follow-up messages to a command's `response_url` (the one I/O of this module's own).
    Only under the configured prefix, and never on to where a redirect points."""

    def __init__(self, prefix: str, timeout: float = FOLLOW_UP_TIMEOUT) -> None:
        import requests

        self._requests = requests
        self.prefix = prefix
        self.timeout = timeout
        self.session = session_without_redirects()

    def allowed(self, url: str | None) -> bool:
        return bool(url) and str(url).startswith(self.prefix)

    def post(self, url: str, message: blocks.Message) -> int | None:
        """POST the message, and once more a second later if Slack failed (5xx, unreachable).
        Slack's status, or None when Slack could not be reached."""
        status, reason = self._post_once(url, message)
        if reason is None:
            return status
        log.warning("retrying a Slack follow-up", extra={"reason": reason})
        time.sleep(1.0)
        return self._post_once(url, message)[0]

    def _post_once(self, url: str, message: blocks.Message) -> tuple[int | None, str | None]:
        """Slack's status, and why it is worth one retry (None: it is not)."""
        try:
            answer = self.session.post(url, json=message, timeout=self.timeout)
        except self._requests.RequestException as exc:
            return None, type(exc).__name__
        if answer.status_code >= 500:
            return answer.status_code, f"status {answer.status_code}"
        return answer.status_code, None


FOLLOW_UP = "slack.follow_up"


class SlashCommands:
    """The commands of one Slack source: dispatch, the allow-list, Slack's 3-second budget."""

    def __init__(self, source_name: str, relay: Relay, tasks: TaskQueue) -> None:
        self.name = source_name
        self.relay = relay
        self.tasks = tasks
        settings = relay.source(source_name).settings
        assert isinstance(settings, SlackSettings)
        self.settings = settings
        self.response_url = ResponseUrl(self.settings.response_url_prefix)
        tasks.register(f"{FOLLOW_UP}:{source_name}", self.post_follow_up)

    def respond(self, event: Event) -> Answer:
        command: SlashCommand = event.extra["command"]
        verb, args = split_command(command.text)
        log.info(
            f"{self.name}: {command.command} {verb or 'help'} from {command.user_id}",
            extra={
                "source": self.name,
                "event": event.key,
                "user_id": command.user_id,
                "user_name": command.user_name,
                "team_id": command.team_id,
                "channel_id": command.channel_id,
                "command": f"{command.command} {command.text}".strip(),
            },
        )
        reply = self.answer(event, command, verb, args)
        return answers.chat_reply(reply.body, reply.message)

    def answer(self, event: Event, command: SlashCommand, verb: str, args: str) -> Reply:
        if command.team_id != self.settings.team_id:
            return refusal(event, "This Revyl relay does not serve this Slack workspace.")
        if verb == "run":
            return self.run(event, command, args)
        if verb == "status":
            return self.status(event, command, args)
        if verb == "routes":
            return self.routes(event, command)
        if verb in ("", "help"):
            return Reply(answered(event, "help"), blocks.usage(command.command))
        problem = f"I don't know the command {verb!r}."
        return Reply(
            rejected(event, f"unknown command {verb!r}"), blocks.usage(command.command, problem)
        )

    def may_run(self, command: SlashCommand) -> bool:
        allow = self.settings.allow
        return allow is None or allow.admits(command.user_id, command.channel_id)

    def run(self, event: Event, command: SlashCommand, args: str) -> Reply:
        relay = self.relay
        if not self.may_run(command):
            return refusal(
                event,
                "You may not start Revyl runs from here: this relay's allow-list does not "
                "include you or this channel.",
            )
        name, _, wanted = args.partition(" ")
        if not name:
            return Reply(
                rejected(event, "run without a route"),
                blocks.usage(command.command, "Which route? Give its name."),
            )
        route = relay.config.route(name)
        if route is None:
            known = ", ".join(r.name for r in relay.config.routes) or "none"
            return refusal(event, f"There is no route named {name!r}. Routes: {known}.")
        plan = plan_run(
            route, wanted.strip(), source=self.name, actor=command.user_name or command.user_id
        )
        if isinstance(plan, str):
            return refusal(event, f"Cannot run {route.name}: {plan}.")
        run_event = Event(
            event.key,
            build=plan.build,
            routes=(route.name,),
            extra={"origin": origin(self.name, command, event)},
        )

        def work() -> Reply:
            answer = relay.trigger(relay.source(self.name), run_event, routes=[plan.route])
            message = blocks.run_result(
                command.command, command.user_id, route.name, plan.shown, answer.body, plan.notes
            )
            return Reply(answer.body, message)

        pending = blocks.run_pending(
            command.user_id,
            route.name,
            plan.shown,
            len(plan.route.tests),
            len(plan.route.workflows),
        )
        return self.within_budget(event, command, work, pending, f"run {route.name}")

    def status(self, event: Event, command: SlashCommand, args: str) -> Reply:
        relay = self.relay
        execution_id = as_uuid(args)
        if execution_id is None:
            problem = "`status` needs an execution id: the last column of a `run` answer."
            return Reply(
                rejected(event, "status without an execution id"),
                blocks.usage(command.command, problem),
            )
        token_ref = relay.config.revyl.token
        if relay.dry_run or token_ref is None:
            return refusal(event, "No Revyl token is configured (dry run): cannot ask Revyl.")

        def work() -> Reply:
            token = relay.secrets.read(token_ref)
            deadline = time.monotonic() + relay.config.revyl.retry_deadline
            found = fetch_status(relay, token, deadline, execution_id)
            if found is None:
                return refusal(event, f"Revyl knows no test or workflow execution {execution_id}.")
            kind, data = found
            url = sansio.report_url(relay.config.revyl.app_url, kind, execution_id)
            body = answered(
                event, f"status of {kind} execution {execution_id}: {data.get('status')}"
            )
            return Reply(body, blocks.status_result(kind, execution_id, data, url))

        pending = blocks.status_pending(execution_id)
        return self.within_budget(
            event, command, work, pending, f"read the status of {execution_id}"
        )

    def routes(self, event: Event, command: SlashCommand) -> Reply:
        if not self.may_run(command):
            return refusal(event, "You may not run any route from here (allow-list).")
        message = blocks.routes_list(command.command, self.relay.config.routes)
        return Reply(answered(event, "listed routes"), message)

    # answering within Slack's 3 seconds

    def within_budget(
        self,
        event: Event,
        command: SlashCommand,
        work: Callable[[], Reply],
        pending: blocks.Message,
        what: str,
    ) -> Reply:
        spent = time.time() - float(event.extra.get("received_at", time.time()))
        reply = within(
            self.settings.reply_within - spent,
            guarded(event, work, what),
            lambda late: self.follow_up(event, command, late),
        )
        if reply is not None:
            return reply
        reason = (
            f"not done within {self.settings.reply_within:g}s: the answer follows on response_url"
        )
        return Reply(RelayResponse(event=event.key, decision="in_progress", reason=reason), pending)

    def follow_up(self, event: Event, command: SlashCommand, reply: Reply) -> None:
        """The late reply, handed to the task queue: `post_follow_up` posts it."""
        fields: dict[str, Any] = {
            "source": self.name,
            "event": event.key,
            "user_id": command.user_id,
            "decision": reply.body.decision,
            "reason": reply.body.reason,
            "execution_ids": reply.body.execution_ids,
            "targets": [e.target for e in reply.body.executions],
        }
        payload = {"response_url": command.response_url, "message": reply.message, "log": fields}
        name = "followup-" + hashlib.sha256(event.key.encode("utf-8", "surrogatepass")).hexdigest()
        try:
            self.tasks.schedule(Task(f"{FOLLOW_UP}:{self.name}", payload, name[:64]))
        except Exception as exc:
            log.error(
                f"{self.name}: follow-up NOT posted: the task queue refused it",
                extra={**fields, "reason": type(exc).__name__},
            )

    def post_follow_up(self, payload: Mapping[str, Any], attempt: int) -> None:
        fields = {k: v for k, v in payload["log"].items() if v not in (None, [])}
        url = payload.get("response_url")
        if not self.response_url.allowed(url):
            log.error(
                f"{self.name}: follow-up not posted: response_url is not under "
                f"{self.response_url.prefix}",
                extra=fields,
            )
            return
        fields["slack_status"] = self.response_url.post(str(url), payload["message"])
        posted = fields["slack_status"] == 200
        log.log(
            logging.INFO if posted else logging.ERROR,
            f"{self.name}: follow-up {'posted' if posted else 'NOT posted'}: {fields['decision']}",
            extra=fields,
        )


def origin(source: str, command: SlashCommand, event: Event) -> dict[str, Any]:
    """Where a command asked from: the verdict of what it starts goes back there (with
    `verdicts:`, `relay.reports.slack.SlashCommandReply`)."""
    return {
        "source": source,
        "channel_id": command.channel_id,
        "user_id": command.user_id,
        "response_url": command.response_url,
        "received_at": event.extra.get("received_at"),
    }


def fetch_status(
    relay: Relay, token: str, deadline: float, execution_id: str
) -> tuple[Literal["test", "workflow"], dict[str, Any]] | None:
    """("test" | "workflow", Revyl's status answer), or None when Revyl knows neither.

    A `run` answer lists test and workflow executions alike, so a 404 from the test endpoint
    is asked again of the workflow one (`GET /api/v1/workflows/status/{id}`)."""
    try:
        return "test", relay.revyl.execution_status(token, deadline, execution_id)
    except Refused as exc:
        if exc.status != 404:
            raise
    try:
        return "workflow", relay.revyl.workflow_status(token, deadline, execution_id)
    except Refused as exc:
        if exc.status == 404:
            return None
        raise


def guarded(event: Event, work: Callable[[], Reply], what: str) -> Callable[[], Reply]:
    """`work` that never raises: failures become an ephemeral message saying what happened."""

    def run() -> Reply:
        try:
            return work()
        except (RelayError, RevylError) as exc:
            decision = answers.decision_for(exc.cause) if isinstance(exc, RelayError) else "failed"
            body = RelayResponse(event=event.key, decision=decision, reason=exc.message)
            return Reply(body, blocks.notice(f"Could not {what}: {exc.message}"))
        except Exception:
            log.exception(f"slack command failed: {what}", extra={"event": event.key})
            body = RelayResponse(event=event.key, decision="failed", reason="internal error")
            return Reply(
                body, blocks.notice(f"Could not {what}: internal error (see the relay's logs).")
            )

    return run


def answered(event: Event, reason: str) -> RelayResponse:
    """A command answered without starting anything (help, routes, status). `ignored` is the
    nearest decision there is: "nothing started"; the reason says what was answered."""
    return RelayResponse(event=event.key, decision="ignored", reason=reason)


def rejected(event: Event, reason: str) -> RelayResponse:
    return RelayResponse(event=event.key, decision="rejected", reason=reason)


def refusal(event: Event, text: str) -> Reply:
    return Reply(rejected(event, text), blocks.notice(text))
