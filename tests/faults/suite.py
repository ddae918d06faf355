"""The fault suite: the running function against a misbehaving world, one scenario at a time.

    .venv/bin/python -m tests.faults            # every scenario, then the table
    .venv/bin/python -m tests.faults --only 429 # the scenarios whose name contains "429"

It starts, on loopback: the fake Revyl, the fake Secret Manager, the Firestore emulator, and two
instances of the function (functions-framework processes) sharing Firestore as a deployment's
instances do (plus a fresh third one where a scenario needs an instance with nothing cached,
and a pair with a short lease for the lease's edge). Each scenario sends one EAS build webhook
(a build id of its own), one or more times, injects its fault, and counts what the fake Revyl
really started for each of the route's three targets.

The exit status is 1 if any scenario's runs or answers differ from what it expects: exactly one
run per target once the event is complete, none where nothing could start.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from relay.sandbox.fakes.revyl import (
    EXECUTE_TEST_PATH,
    EXECUTE_WORKFLOW_PATH,
    Delay,
    FakeRevyl,
    Hang,
    Reset,
    Status,
    Trickle,
)
from relay.sandbox.fakes.secret_manager import FakeSecretManager
from relay.sandbox.function_process import FunctionProcess
from relay.signatures import hmac_hex, standard_webhook_signature
from relay.stores.firestore import document_id
from tests.fakes.firestore_emulator import FirestoreEmulator
from tests.payloads import EAS_SECRET, GENERIC_SECRET, payload

TOKEN = "rev_fault_suite_token_5c1d"
APP = "5b0d3c1e-8a4f-4f6e-9d2a-1c3b5e7f9a01"
TARGETS = {
    "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6": "test-1",
    "1a9e7d2b-3c4d-4e5f-9a01-b2c3d4e5f6a7": "test-2",
    "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928": "workflow",
}
TESTS = [t for t, name in TARGETS.items() if name.startswith("test")]
WORKFLOW = next(t for t, name in TARGETS.items() if name == "workflow")
CI_TEST = "3e2d1c0b-4a59-4867-8f7e-6d5c4b3a2f10"  # the route of the `ci` source (generic)
ONCE = {"test-1": 1, "test-2": 1, "workflow": 1}
NONE = {"test-1": 0, "test-2": 0, "workflow": 0}
SHORT_LEASE = (
    9  # seconds: > the margin (connect 1 + request 1 + 5 to record), so starts stop at 2 s
)
FIRESTORE_DOCUMENT_LIMIT = 1_048_576  # bytes (the emulator does not enforce it; Firestore does)


def config_yaml(
    revyl_url: str, collection: str, retry_unknown: bool = True, lease_seconds: int = 540
) -> str:
    return f"""
revyl:
  api_url: {revyl_url}
  token: {{secret: revyl-api-key}}
  connect_timeout: 1
  request_timeout: 1
  retry_deadline: 3
  retry_unknown: {str(retry_unknown).lower()}
sources:
  eas: {{secret: {{secret: eas-webhook-secret}}}}
  ci: {{type: generic, secret: {{secret: ci-webhook-secret}}}}
routes:
  - name: ios-smoke
    when: {{source: eas, platform: ios}}
    build: {{ingest: {{app_id: {APP}}}}}
    tests: {json.dumps(TESTS)}
    workflows: [{WORKFLOW}]
  - name: ci-smoke
    when: {{source: ci}}
    tests: [{CI_TEST}]
dedup: {{store: firestore, collection: {collection}, ttl_days: 1, lease_seconds: {lease_seconds}}}
"""


@dataclass
class Delivery:
    instance: str
    status: int
    decision: str
    retry_after: str | None = None
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.instance}:{self.status} {self.decision}"


@dataclass
class Result:
    name: str
    deliveries: list[Delivery]
    runs: dict[str, int]
    expected_runs: dict[str, int]
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and self.runs == self.expected_runs


class World:
    """The fakes, the emulator and the function's instances, all on loopback."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.revyl = FakeRevyl(token=TOKEN).start()
        self.secrets = FakeSecretManager().start()
        self.emulator = FirestoreEmulator().start()
        self.config = workdir / "relay.yaml"
        self.collection = f"faults-{uuid.uuid4().hex[:8]}"
        self.config.write_text(config_yaml(self.revyl.url, self.collection))
        # instance U: the other reading of an ambiguous failure (never start it again)
        self.cautious_config = workdir / "relay-retry-unknown-false.yaml"
        self.cautious_config.write_text(config_yaml(self.revyl.url, self.collection, False))
        # instances L and M: a short lease (the lease's edge), never starting an unknown again
        self.short_lease_config = workdir / "relay-short-lease.yaml"
        self.short_lease_config.write_text(
            config_yaml(self.revyl.url, self.collection, False, SHORT_LEASE)
        )
        self._reset_secrets()
        self.instances: dict[str, FunctionProcess] = {}
        for name in ("A", "B"):
            self.instances[name] = self.start_instance(name)

    def _reset_secrets(self) -> None:
        self.secrets.down = False
        self.secrets.set("revyl-api-key", TOKEN, project="demo")
        self.secrets.set("eas-webhook-secret", EAS_SECRET, project="demo")
        self.secrets.set("ci-webhook-secret", GENERIC_SECRET, project="demo")

    def start_instance(self, name: str) -> FunctionProcess:
        configs = {"U": self.cautious_config, "L": self.short_lease_config}
        configs["M"] = self.short_lease_config
        config = configs.get(name, self.config)
        env = {
            "RELAY_CONFIG": str(config),
            "RELAY_SECRET_MANAGER_ENDPOINT": self.secrets.url,
            "GOOGLE_CLOUD_PROJECT": "demo",
            **self.emulator.env(),
        }
        log = self.workdir / f"instance-{name}-{uuid.uuid4().hex[:6]}.log"
        process = FunctionProcess(env, log_path=log).start()
        self.instances[name] = process
        return process

    def close(self) -> None:
        for process in self.instances.values():
            process.stop()
        self.emulator.stop()
        self.secrets.stop()
        self.revyl.stop()

    # one scenario's tools

    def fresh(self) -> str:
        """A new build id (a new event), with Revyl's state and faults forgotten."""
        self.revyl.reset()
        self.revyl.latency = 0.0
        if not self.revyl.running:
            self.revyl.start()
        if not self.emulator.running:
            self.emulator.start()
        self._reset_secrets()
        return f"fault-{uuid.uuid4()}"

    def deliver(self, instance: str, build_id: str) -> Delivery:
        data = json.loads(payload("eas-build-finished-ios.json"))
        data["id"] = build_id
        body = json.dumps(data).encode()  # a lone surrogate goes as its JSON escape, \ud800
        signature = "sha1=" + hmac_hex(EAS_SECRET, body, hashlib.sha1)
        return self.post(instance, "/eas", body, {"expo-signature": signature})

    def deliver_ci(self, instance: str) -> Delivery:
        """A build from the other source, `ci` (Standard Webhooks), an event of its own."""
        msg_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps({"status": "success", "build_id": msg_id, "version": "1.0"}).encode()
        timestamp = str(int(time.time()))
        signature = standard_webhook_signature(GENERIC_SECRET, msg_id, timestamp, body)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        }
        return self.post(instance, "/ci", body, headers)

    def post(self, instance: str, path: str, body: bytes, headers: dict[str, str]) -> Delivery:
        url = self.instances[instance].url + path
        try:
            answer = requests.post(url, data=body, headers=headers, timeout=60)
        except requests.RequestException as exc:
            return Delivery(instance, 0, f"no answer ({type(exc).__name__})")
        try:
            body = answer.json()
        except ValueError:
            return Delivery(instance, answer.status_code, "not JSON")
        retry_after = answer.headers.get("Retry-After")
        decision, reason = body.get("decision", "?"), body.get("reason") or ""
        return Delivery(instance, answer.status_code, decision, retry_after, reason)

    def deliver_until_answered(
        self, instance: str, build_id: str, tries: int = 10
    ) -> list[Delivery]:
        """Deliver like a sender that retries after 503/409: until another answer (or `tries`)."""
        seen = []
        for _ in range(tries):
            seen.append(self.deliver(instance, build_id))
            if seen[-1].status not in (409, 503, 0):
                break
            time.sleep(1)
        return seen

    def event_document(self, build_id: str) -> Any:
        """The event's document in Firestore (the suite reads the emulator)."""
        import os

        from google.cloud import firestore

        os.environ.update(self.emulator.env())
        client = firestore.Client(project="demo")
        key = f"eas:{build_id}:finished"
        return client.collection(self.collection).document(document_id(key))

    def wait_for_event(self, build_id: str, timeout: float = 20) -> bool:
        """Wait until Firestore holds the event's record."""
        ref = self.event_document(build_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if ref.get(timeout=2).exists:
                    return True
            time.sleep(0.2)
        return False

    def runs(self) -> dict[str, int]:
        started = self.revyl.started(EXECUTE_TEST_PATH) + self.revyl.started(EXECUTE_WORKFLOW_PATH)
        ids = [c.json.get("test_id") or c.json["workflow_id"] for c in started]
        counts = Counter(TARGETS[i] for i in ids if i in TARGETS)
        return {name: counts.get(name, 0) for name in TARGETS.values()}

    def ci_runs(self) -> int:
        return sum(c.json.get("test_id") == CI_TEST for c in self.revyl.started(EXECUTE_TEST_PATH))


def expect(deliveries: list[Delivery], *wanted: tuple[int, str]) -> list[str]:
    """Problems, if the deliveries' (status, decision) differ from `wanted`, in order."""
    got = [(d.status, d.decision) for d in deliveries]
    return [] if got == list(wanted) else [f"answers {got}, expected {list(wanted)}"]


def with_retry_after(deliveries: list[Delivery]) -> list[str]:
    return [
        f"{d} has no Retry-After"
        for d in deliveries
        if d.status in (409, 503) and not (d.retry_after and d.retry_after.isdigit())
    ]


# --- the scenarios -------------------------------------------------------------------------------

Scenario = Callable[[World], Result]
SCENARIOS: list[tuple[str, Scenario]] = []


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS.append((name, fn))
        return fn

    return register


@scenario("20 concurrent deliveries, 2 instances")
def concurrent(world: World) -> Result:
    build = world.fresh()
    world.revyl.latency = 0.3  # the first is still starting runs while the others arrive
    barrier = threading.Barrier(20)
    deliveries: list[Delivery] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        barrier.wait()
        delivery = world.deliver("AB"[n % 2], build)
        with lock:
            deliveries.append(delivery)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decisions = Counter((d.status, d.decision) for d in deliveries)
    problems = with_retry_after(deliveries)
    if decisions[(200, "triggered")] != 1:
        problems.append(f"{decisions[(200, 'triggered')]} deliveries triggered, expected 1")
    others = set(decisions) - {(200, "triggered"), (409, "in_progress"), (200, "duplicate")}
    if others:
        problems.append(f"unexpected answers {sorted(others)}")
    summary = [Delivery("A+B", s, f"{d} ×{n}") for (s, d), n in sorted(decisions.items())]
    return Result("", summary, world.runs(), ONCE, problems)


@scenario("redelivery after a partial failure (402)")
def partial(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Status(402, json_body={"detail": "Out of minutes"}))
    first = world.deliver("A", build)
    again = world.deliver("B", build)
    problems = expect([first, again], (502, "partial"), (200, "triggered"))
    return Result("", [first, again], world.runs(), ONCE, problems)


@scenario("Revyl 429 with Retry-After: 1")
def too_many(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_TEST_PATH, Status(429, headers={"Retry-After": "1"}))
    first = world.deliver("A", build)
    again = world.deliver("A", build)
    problems = expect([first, again], (200, "triggered"), (200, "duplicate"))
    return Result("", [first, again], world.runs(), ONCE, problems, "retried after 1 s")


@scenario("Revyl 503, twice")
def unavailable(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Status(503), Status(503))
    first = world.deliver("A", build)
    problems = expect([first], (200, "triggered"))
    return Result("", [first], world.runs(), ONCE, problems, "retried with backoff")


@scenario("Revyl 503 past the deadline")
def unavailable_long(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail_always(EXECUTE_WORKFLOW_PATH, Status(503))
    first = world.deliver("A", build)
    world.revyl.clear_faults()
    again = world.deliver("B", build)
    problems = expect([first, again], (502, "partial"), (200, "triggered"))
    return Result("", [first, again], world.runs(), ONCE, problems)


@scenario("Revyl 500")
def server_error(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Status(500))
    first = world.deliver("A", build)
    again = world.deliver("B", build)
    problems = expect([first, again], (502, "partial"), (200, "triggered"))
    return Result("", [first, again], world.runs(), ONCE, problems, "unknown, then retried")


@scenario("Revyl resets the connection")
def reset(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Reset())
    first = world.deliver("A", build)
    again = world.deliver("B", build)
    problems = expect([first, again], (502, "partial"), (200, "triggered"))
    return Result("", [first, again], world.runs(), ONCE, problems, "unknown, then retried")


@scenario("Revyl times out (the run did start)")
def timeout(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Hang(3))
    first = world.deliver("A", build)
    again = world.deliver("B", build)
    problems = expect([first, again], (502, "partial"), (200, "triggered"))
    note = "ambiguous: Revyl started it but never answered; retried on redelivery"
    return Result("", [first, again], world.runs(), {**ONCE, "workflow": 2}, problems, note)


@scenario("Revyl times out, retry_unknown: false")
def timeout_cautious(world: World) -> Result:
    if "U" not in world.instances:
        world.start_instance("U")
    build = world.fresh()
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Hang(3))
    first = world.deliver("U", build)
    again = world.deliver("U", build)
    problems = expect([first, again], (502, "partial"), (200, "duplicate"))
    note = "ambiguous: reported unknown and never started again (at most once)"
    return Result("", [first, again], world.runs(), ONCE, problems, note)


@scenario("Revyl refuses connections")
def refused(world: World) -> Result:
    build = world.fresh()
    world.revyl.stop()
    first = world.deliver("A", build)
    world.revyl.start()
    again = world.deliver("B", build)
    problems = expect([first, again], (502, "failed"), (200, "triggered"))
    return Result("", [first, again], world.runs(), ONCE, problems)


@scenario("Secret Manager down (fresh instance)")
def secrets_down(world: World) -> Result:
    build = world.fresh()
    world.start_instance("C")  # nothing cached yet
    world.secrets.down = True
    first = world.deliver("C", build)
    runs_while_down = world.runs()
    world.secrets.down = False
    again = world.deliver("C", build)
    problems = expect([first, again], (503, "failed"), (200, "triggered"))
    problems += with_retry_after([first])
    if runs_while_down != NONE:
        problems.append(f"runs started while the token could not be read: {runs_while_down}")
    world.instances.pop("C").stop()
    return Result("", [first, again], world.runs(), ONCE, problems)


@scenario("Firestore down before the delivery")
def store_down(world: World) -> Result:
    build = world.fresh()
    world.emulator.stop()
    first = world.deliver("A", build)
    runs_while_down = world.runs()
    world.emulator.start()
    later = world.deliver_until_answered("B", build)
    problems = with_retry_after([first])
    problems += expect([first, later[-1]], (503, "failed"), (200, "triggered"))
    if runs_while_down != NONE:
        problems.append(f"runs started without a claim: {runs_while_down}")
    return Result("", [first, *later], world.runs(), ONCE, problems)


@scenario("Firestore stopped mid-run")
def store_stops(world: World) -> Result:
    build = world.fresh()
    world.revyl.fail(EXECUTE_TEST_PATH, Delay(0.7), Delay(0.7))  # < request_timeout
    world.revyl.fail(EXECUTE_WORKFLOW_PATH, Delay(0.7))
    answers: list[Delivery] = []
    sender = threading.Thread(target=lambda: answers.append(world.deliver("A", build)))
    sender.start()
    deadline = time.monotonic() + 10
    while len(world.revyl.calls_to("/execution/")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    world.emulator.stop()  # claimed, runs starting: the store goes away
    sender.join()
    during = world.deliver("A", build)  # the same instance remembers
    world.emulator.start()  # the emulator comes back EMPTY (harsher than a real outage)
    written = world.wait_for_event(build)  # A writes its journal back, in the background
    other = world.deliver_until_answered("B", build)  # another instance reads it from Firestore
    again = world.deliver("A", build)
    deliveries = [*answers, during, *other, again]
    problems = expect(
        [*answers, during, other[-1], again],
        (200, "triggered"),
        (200, "duplicate"),
        (200, "duplicate"),
        (200, "duplicate"),
    )
    if not written:
        problems.append("A never wrote its journaled outcome back to Firestore")
    if answers and "did not take this outcome" not in answers[0].reason:
        problems.append("the first answer does not say its outcome went unrecorded")
    note = "outcome journaled on A while Firestore was away, written back when it returned"
    return Result("", deliveries, world.runs(), ONCE, problems, note)


@scenario("Revyl trickles the start past the lease's edge, redelivered after it")
def lease_edge(world: World) -> Result:
    """A answers each test's start one byte every 70 ms (~15 s in all, past the 9 s lease;
    each read far inside the 1 s read timeout). A's call is bounded as a whole (2 s), so A
    records `unknown` and ends before its lease does; M, redelivered after the lease, finds
    the event done instead of a claim gone stale with the tests unrecorded (which it would
    take over and start them again). retry_unknown: false: an unknown is never started again."""
    for name in ("L", "M"):
        if name not in world.instances:
            world.start_instance(name)
    build = world.fresh()
    world.revyl.fail(EXECUTE_TEST_PATH, Trickle(0.07), Trickle(0.07))
    answers: list[Delivery] = []
    answered: list[float] = []
    sent = time.monotonic()

    def deliver_first() -> None:
        answers.append(world.deliver("L", build))
        answered.append(time.monotonic() - sent)

    first = threading.Thread(target=deliver_first)
    first.start()
    time.sleep(max(0.0, sent + SHORT_LEASE + 0.5 - time.monotonic()))  # the lease is over
    after = world.deliver("M", build)
    first.join()
    deliveries = [*answers, after]
    problems = expect(deliveries, (502, "partial"), (200, "duplicate"))
    took = f"{answered[0]:.1f} s" if answered else "no answer"
    note = f"L's trickled starts cut at the whole-call bound (2 s): L answered in {took}"
    return Result("", deliveries, world.runs(), ONCE, problems, note)


@scenario("a poisoned event, then other sources' deliveries to A and B")
def poisoned(world: World) -> Result:
    """Two events the store could not hold before: a key with a lone surrogate (EAS
    `"id": "x\\ud800"`), and an outcome of 2 MB with a lone surrogate in it (Revyl's 402
    detail). Then deliveries from the `ci` source and EAS to both instances: all answered as
    usual, none held up by what A could not write."""
    surrogate = "x\ud800"
    huge = world.fresh()  # resets Revyl: both poisoned events run in this scenario
    first = world.deliver("A", surrogate)
    world.revyl.fail(
        EXECUTE_WORKFLOW_PATH,
        Status(402, json_body={"detail": "Out of minutes \ud800 " + "z" * 2_000_000}),
    )
    second = world.deliver("A", huge)
    others = [
        world.deliver_ci("A"),
        world.deliver_ci("B"),
        world.deliver("A", f"fault-{uuid.uuid4()}"),
        world.deliver("B", surrogate),  # B reads A's record of it from Firestore
    ]
    deliveries = [first, second, *others]
    problems = expect(
        deliveries,
        (200, "triggered"),
        (502, "partial"),
        (200, "triggered"),
        (200, "triggered"),
        (200, "triggered"),
        (200, "duplicate"),
    )
    if world.ci_runs() != 2:
        problems.append(f"the ci source's test ran {world.ci_runs()} times, expected 2")
    size = document_size(world, huge)
    if size is None or size >= FIRESTORE_DOCUMENT_LIMIT:
        problems.append(f"the 2 MB outcome's document is {size} bytes (Firestore's limit: 1 MiB)")
    note = f"the 2 MB outcome stored in {size} bytes"
    return Result(
        "",
        deliveries,
        world.runs(),
        {**ONCE, "test-1": 3, "test-2": 3, "workflow": 2},
        problems,
        note,
    )


def document_size(world: World, build_id: str) -> int | None:
    """The event document's size, roughly as Firestore counts it (its fields as JSON)."""
    if not world.wait_for_event(build_id):
        return None
    data = world.event_document(build_id).get(timeout=5).to_dict() or {}
    return len(json.dumps(data, default=str).encode())


# --- running and reporting -----------------------------------------------------------------------


def run(selected: list[tuple[str, Scenario]]) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="relay-faults-") as tmp:
        world = World(Path(tmp))
        try:
            for name, fn in selected:
                started = time.monotonic()
                try:
                    result = fn(world)
                except Exception as exc:  # a broken scenario is a failed one, with its reason
                    result = Result("", [], {}, ONCE, [f"scenario crashed: {exc!r}"])
                result.name = name
                result.note += f"{'; ' if result.note else ''}{time.monotonic() - started:.1f} s"
                results.append(result)
                print(f"{'ok  ' if result.ok else 'FAIL'} {name}", file=sys.stderr, flush=True)
        finally:
            world.close()
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | deliveries (instance:status decision) | runs at Revyl | verdict |",
        "|---|---|---|---|",
    ]
    for r in results:
        deliveries = " → ".join(str(d) for d in r.deliveries) or "-"
        runs = " ".join(f"{k}={v}" for k, v in r.runs.items()) or "-"
        if r.ok:
            verdict = "ok" + (f" ({r.note})" if r.note else "")
        else:
            wanted = " ".join(f"{k}={v}" for k, v in r.expected_runs.items())
            reasons = r.problems + (
                [f"runs expected {wanted}"] if r.runs != r.expected_runs else []
            )
            verdict = "**VIOLATION**: " + "; ".join(reasons)
        lines.append(f"| {r.name} | {deliveries} | {runs} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", help="run the scenarios whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(name for name, _ in SCENARIOS))
        return 0
    selected = [(n, fn) for n, fn in SCENARIOS if not args.only or args.only.lower() in n.lower()]
    if not selected:
        print(f"no scenario matches {args.only!r}", file=sys.stderr)
        return 2
    results = run(selected)
    print(table(results))
    failed = [r.name for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
