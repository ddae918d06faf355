"""The Makefile a new user starts with: `make help`, and `make run` saying where it listens
(or, on a busy port, how to pick another). `make` runs as the user runs it, in the repository."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import requests

from relay.sandbox.function_process import REPO_ROOT
from relay.sandbox.net import LOOPBACK, free_port


def make(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def test_make_help_lists_every_target_with_what_it_does():
    done = make("help")
    assert done.returncode == 0
    targets = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("make ")]
    assert targets == [
        "help", "run", "sandbox", "check", "test", "faults", "bench", "lint", "format", "clean",
    ]  # fmt: skip
    assert "make run     The relay on http://127.0.0.1:8080" in done.stdout
    assert make().stdout == done.stdout  # a bare `make` is the help


def test_make_run_on_a_busy_port_says_how_to_pick_another():
    with socket.create_server((LOOPBACK, 0)) as busy:
        port = busy.getsockname()[1]
        done = make("run", f"PORT={port}")
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        f"make run: port {port} is in use (another relay?); pick another: PORT={port + 1} make run"
    )


def test_make_run_prints_the_url_it_listens_on(tmp_path):
    port = free_port()
    log = tmp_path / "make-run.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REVYL_API_KEY", "RELAY_CONFIG")}
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the relay's workers stop with it
        )
    try:
        url = f"http://{LOOPBACK}:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"{url}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
        assert health.json() == {"status": "ok", "dry_run": True}
        first = log.read_text().splitlines()[0]
        assert first.startswith(f"make run: the relay on {url}: POST a webhook to /<source>")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
