"""The benchmark in its tiny mode: it runs end to end and its counts add up (never its timings:
this machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.function_process import REPO_ROOT


def test_quick_benchmark_counts(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--logs", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
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
