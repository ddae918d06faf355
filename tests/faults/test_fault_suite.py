"""The fault suite as part of the test suite: the same program docs/operations.md runs."""

from __future__ import annotations

import subprocess
import sys

from relay.sandbox.function_process import REPO_ROOT


def test_every_fault_scenario_keeps_exactly_one_run_per_target():
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "0 failed" in done.stdout
