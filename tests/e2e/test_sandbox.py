"""`python -m relay sandbox` as a new user meets it: started as a subprocess, every `send`
command it prints run exactly as printed (a shell line, from the repository), each answered
`triggered` (Slack: the relay's in-channel reply) and, sent again, `duplicate`; every route's
verdict reported to the fake webhook; then SIGINT stops the relay and every fake."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay.sandbox.function_process import REPO_ROOT
from relay.sandbox.net import LOOPBACK, free_port, port_accepts
from relay.sandbox.scenario import SAMPLES

BANNER_END = "What the fakes receive:"
ROUTES = [
    "android-preview", "ci-builds", "android-release", "android-pr", "dispatched",
    "android-smoke", "codemagic-preview", "testflight-smoke", "ios-smoke",
]  # fmt: skip
SOURCES = {"eas", "ci", "github", "bitrise", "codemagic", "app-store-connect", "slack"}


class Sandbox:
    """The sandbox process, its output in a file (read as it grows)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.output = folder / "sandbox.out"
        env = {k: v for k, v in os.environ.items() if k != "RELAY_CONFIG"}
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "sandbox", "--port", str(port)],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # SIGINT reaches the sandbox alone, as Ctrl-C would
            )

    def text(self) -> str:
        return self.output.read_text()

    def wait_for(self, wanted: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while wanted not in (text := self.text()):
            assert self.process.poll() is None, f"the sandbox exited:\n{text}"
            assert time.monotonic() < deadline, f"no {wanted!r} in:\n{text}"
            time.sleep(0.1)
        return text

    def stop(self) -> None:
        """After a failure: SIGTERM, which the sandbox passes on to the relay's process group."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def sandbox(tmp_path):
    running = Sandbox(tmp_path, free_port())
    yield running
    running.stop()  # only when the test failed before stopping it


def send(command: str) -> tuple[str, dict]:
    """Run a printed command as a shell line; its status line and the answer it printed."""
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    posted, status, body = done.stdout.split("\n", 2)
    assert posted.startswith("POST http://127.0.0.1:"), posted
    return status, json.loads(body)


def group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


class Banner:
    """What the sandbox printed before its activity: commands, the relay's pid, the fakes."""

    def __init__(self, text: str) -> None:
        self.commands = [line for line in text.splitlines() if " -m relay send " in line]
        self.relay_pid = int(re.search(r"\(pid (\d+)\)", text)[1])
        fakes = re.findall(r"^  .+  http://127\.0\.0\.1:(\d+)$", text, re.M)
        self.fake_ports = [int(port) for port in fakes]
        self.workdir = Path(re.search(r"^  config  (.+)/relay\.yaml$", text, re.M)[1])


def assert_stops_everything(sandbox: Sandbox, banner: Banner, signum: int) -> None:
    os.kill(sandbox.process.pid, signum)
    assert sandbox.process.wait(timeout=60) == 0
    assert sandbox.text().splitlines()[-1].startswith("relay sandbox: stopped the relay")
    deadline = time.monotonic() + 30
    while not group_is_gone(banner.relay_pid):  # the relay and its workers
        assert time.monotonic() < deadline, "the relay's processes outlived the sandbox"
        time.sleep(0.1)
    assert not any(port_accepts(LOOPBACK, port) for port in banner.fake_ports)
    assert not banner.workdir.exists()


def test_every_printed_command_triggers_and_sigint_stops_everything(sandbox):
    banner = Banner(sandbox.wait_for(BANNER_END))
    assert len(banner.commands) == len(SAMPLES)
    assert {line.split(" send ")[1].split()[0] for line in banner.commands} == SOURCES
    assert len(banner.fake_ports) == 7

    for command in banner.commands:
        status, answer = send(command)
        assert status == "200 OK", (command, answer)
        if " send slack " in command:
            assert answer["response_type"] == "in_channel", answer
            if "is running" in answer["text"]:  # past Slack's budget: the reply follows
                sandbox.wait_for("Slack response_url: POST")
                answer_text = sandbox.text().split("Slack response_url: POST", 1)[1]
            else:
                answer_text = answer["text"]
            assert "ran ios-smoke on 2.4.0 (187): 3 started" in answer_text
        else:
            assert answer["decision"] == "triggered", (command, answer)
            assert all(e["outcome"] == "started" for e in answer["executions"]), answer

    for command in banner.commands:  # as the banner says: sent again, nothing new starts
        status, answer = send(command)
        assert status == "200 OK", (command, answer)
        if " send slack " in command:
            assert "already ran ios-smoke" in answer["text"], answer
        else:
            assert answer["decision"] == "duplicate", (command, answer)

    for route in ROUTES:  # the fake Revyl passes every run on its second poll
        sandbox.wait_for(f"verdict webhook: POST /verdicts -> 200  check.finished {route}: passed")
    output = sandbox.text()
    assert not re.search(r"-> [45]\d\d", output), output  # every fake took what it was sent

    assert_stops_everything(sandbox, banner, signal.SIGINT)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_the_relay_and_every_fake(sandbox, signum):
    assert_stops_everything(sandbox, Banner(sandbox.wait_for(BANNER_END)), signum)
