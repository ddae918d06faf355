"""What a new user meets in the first hour, against the relay as production runs it: the
answers to a wrong URL and a wrong secret, and examples/post-build.sh (the generic CI step)
run with bash for a 200, a 401 (not retried, the reason shown) and a 503 (retried)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.payloads import GENERIC_SECRET

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "post-build.sh"
TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
CONFIG = f"""
secrets: {{ttl_seconds: 0}}
sources:
  ci: {{type: generic, secret: {{secret: ci-webhook-secret}}}}
  eas: {{secret: {{secret: eas-webhook-secret}}}}
routes:
  - {{name: smoke, when: {{source: ci}}, tests: [{TEST}]}}
"""
BODY = json.dumps({"platform": "android", "version": "2.4.0", "build_number": "187"})
WRONG_SECRET = "whsec_" + base64.b64encode(b"not the secret of this source").decode()


@pytest.fixture
def relay(start_relay, revyl_yaml):
    return start_relay(revyl_yaml + CONFIG)


def answers(relay, status: int) -> list[dict]:
    """The relay's log entries of its answers with `status` (one JSON object per line)."""
    deadline = time.monotonic() + 5
    while True:
        entries = [
            json.loads(line) for line in relay.log_text().splitlines() if line.startswith("{")
        ]
        found = [e for e in entries if e.get("status") == status]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def post_build(relay, secret: str, webhook_id: str, attempts: int = 5):
    env = {
        "PATH": os.environ["PATH"],
        "RELAY_URL": f"{relay.url}/ci",
        "RELAY_SECRET": secret,
        "WEBHOOK_ID": webhook_id,
        "RELAY_ATTEMPTS": str(attempts),
        "RELAY_RETRY_DELAY": "0",
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], input=BODY, capture_output=True, text=True, env=env, timeout=120
    )


def test_an_unknown_path_lists_the_sources_paths(relay):
    answer = requests.post(f"{relay.url}/gitlab", data=b"{}", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["reason"] == "no source named 'gitlab'; the sources' paths: /ci, /eas"


def test_a_wrong_secret_is_logged_as_a_warning(relay):
    answer = requests.post(f"{relay.url}/eas", data=b"{}", timeout=10)
    assert answer.status_code == 401
    (entry,) = answers(relay, 401)
    assert entry["severity"] == "WARNING"


def test_the_ci_step_posts_a_build_and_prints_the_answer(relay, fake_revyl):
    done = post_build(relay, GENERIC_SECRET, "build-200")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("relay: 200 triggered\n")
    assert json.loads(done.stdout.splitlines()[1])["decision"] == "triggered"
    assert len(fake_revyl.calls_to("execute_test_id_async")) == 1


def test_the_ci_step_does_not_retry_a_401_and_shows_the_reason(relay):
    done = post_build(relay, WRONG_SECRET, "build-401")
    assert done.returncode == 1
    assert done.stderr == "relay: 401 rejected: signature verification failed\n"
    assert len(answers(relay, 401)) == 1


def test_the_ci_step_retries_a_503(relay, fake_secret_manager):
    fake_secret_manager.down = True  # the signing secret cannot be read: 503, Retry-After
    done = post_build(relay, GENERIC_SECRET, "build-503", attempts=3)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("relay: 503 failed: ")
    assert "relay: retrying in 0 s (attempt 3 of 3)" in lines
    assert lines[-1] == "relay: giving up after 3 attempts"
    assert len(answers(relay, 503)) == 3
