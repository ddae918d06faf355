"""The benchmark in its tiny mode: it runs end to end and its counts add up (never its timings:
this machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import COUNTS_WRONG, TARGET_MISSED, exit_code
from relay.sandbox.function_process import REPO_ROOT


def test_quick_benchmark_counts(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--logs", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(out.read_text())
    counts = results["counts"]

    assert counts["webhooks_sent"] > 0
    assert counts["webhooks_not_ok"] == 0  # every webhook answered 200 with all its tests started
    assert counts["execute_calls_seen"] == counts["execute_calls_expected"]
    assert counts["secret_manager_calls_warm"] == 0  # warm requests inside the TTL fetch nothing
    assert counts["secret_manager_calls_cold"] == [2] * results["settings"]["cold_starts"]
    assert results["memory"]["secret_manager_calls_per_1000_warm"] == 0

    assert [row["tests"] for row in results["fanout"]] == results["settings"]["fanout"]
    assert {t["target"].split(" ")[0] for t in results["targets"]} >= {
        "fan-out",
        "overhead",
        "throughput",
        "cold",
        "peak",
        "Secret",
    }
    assert "targets" in finished.stdout
    progress = [line for line in finished.stderr.splitlines() if line.startswith("bench [")]
    phases = [line.split("] ", 1)[1].split(":", 1)[0] for line in progress[1:-1]]
    assert phases == [
        "1/6 fan-out",
        "2/6 overhead",
        "3/6 throughput",
        "4/6 memory",
        "5/6 cold start",
        "6/6 verdicts",
    ]
    verdicts = results["verdicts"]
    assert verdicts["messages_delivered"] == 2 * verdicts["checks"]  # started + finished each
    assert verdicts["tasks_created_per_run"] >= 4  # start, two reports, at least one poll
    assert verdicts["revyl_status_calls_per_run"] >= 1
    assert progress[-1].endswith("] done")


COUNTS = {"webhooks_not_ok": 0, "execute_calls_seen": 5, "execute_calls_expected": 5}


@pytest.mark.parametrize(
    ("counts", "met", "judged", "code"),
    [
        (COUNTS, [True, True], True, 0),
        (COUNTS, [True, False], True, TARGET_MISSED),
        (COUNTS, [True, False], False, 0),  # --quick or --report-only
        ({**COUNTS, "webhooks_not_ok": 1}, [True], False, COUNTS_WRONG),
        ({**COUNTS, "execute_calls_seen": 6}, [True], True, COUNTS_WRONG),
    ],
)
def test_the_exit_code_says_whether_the_targets_were_met(counts, met, judged, code):
    results = {"counts": counts, "targets": [{"met": m} for m in met]}
    assert exit_code(results, judged) == code
