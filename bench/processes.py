"""The processes a benchmark run starts: the fake Revyl, and functions served as in production.

`Served` starts `python -m functions_framework --target T --source S` exactly as Cloud Run
functions does (gunicorn, its default workers and threads unless the environment says
otherwise), the relay and the floor function alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.client import Connection, Request, post
from relay.sandbox.net import LOOPBACK, free_port, port_accepts

REPO = Path(__file__).resolve().parent.parent


class BenchRevylProcess:
    """`python -m bench.fake_revyl` in its own process; control calls over HTTP."""

    def __init__(self, token: str, latency: float = 0.0) -> None:
        self.token = token
        self.latency = latency
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> BenchRevylProcess:
        command = [sys.executable, "-m", "bench.fake_revyl", "--token", self.token]
        command += ["--latency", str(self.latency)]
        self.proc = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake Revyl did not start: {line!r}")
        self.url = line.split()[1]
        self._control = Connection(self.url)
        return self

    def control(self, action: str, payload: Any | None = None) -> dict[str, Any]:
        if payload is None:
            status, body = self._control.request("GET", f"/_bench/{action}")
        else:
            body_bytes = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"}
            status, body = self._control.request("POST", f"/_bench/{action}", body_bytes, headers)
        if status != 200:
            raise RuntimeError(f"fake Revyl control {action}: {status} {body!r}")
        return json.loads(body)

    def set_latency(self, seconds: float) -> None:
        self.control("latency", {"seconds": seconds})

    def stats(self) -> dict[str, int]:
        return self.control("stats")

    def forget(self) -> None:
        self.control("forget", {})

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Served:
    """One function served by functions-framework, in its own process group."""

    def __init__(
        self, name: str, source: str, target: str, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.source = source
        self.target = target
        self.env = dict(env)
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "functions_framework",
            "--target", self.target, "--source", self.source,
            "--host", LOOPBACK, "--port", str(self.port),
        ]  # fmt: skip

    def spawn(self) -> Served:
        """Start the process and return at once (`started_at` is when it was spawned), on the
        port set before (a config may need to name it), else on a free one."""
        self.port = self.port or free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        for name in ("WORKERS", "THREADS", "DEBUG"):  # production defaults unless set here
            if name not in self.env:
                env.pop(name, None)
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def first_answer(self, path: str, request: Request, timeout: float = 60.0) -> float:
        """Seconds from spawn to the first answered request (polls the port every 2 ms)."""
        deadline = time.perf_counter() + timeout
        while not port_accepts(LOOPBACK, self.port, timeout=1.0):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log_path}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name} did not listen within {timeout} s")
            time.sleep(0.002)
        conn = Connection(self.url)
        try:
            status, body, _ = post(conn, path, request)
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"{self.name}: first webhook answered {status}: {body[:300]!r}")
        return time.perf_counter() - self.started_at

    def start(self, path: str, request: Request) -> Served:
        self.spawn()
        self.first_answer(path, request)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind

    # memory ---------------------------------------------------------------------

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        assert self.proc is not None
        master = self.proc.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return [master, *map(int, children)]

    def memory(self) -> dict[str, float]:
        """MB. `instance`: what the instance holds, counting a page once: the worker's RSS plus
        the pages only the master has written (its copies of pages the worker changed since the
        fork, which grow as the worker touches inherited objects, and what it allocated since).
        `rss_sum` counts every page the two share twice: an upper bound.
        `worker_rss` is the leak detector: it grows only with what the worker allocates."""
        master, *workers = self.pids()
        status = {pid: _status(pid) for pid in (master, *workers)}
        worker_rss = sum(status[pid]["VmRSS"] for pid in workers)
        worker_peak = sum(status[pid]["VmHWM"] for pid in workers)
        master_own = _private_dirty_kb(master)
        return {
            "instance_mb": (worker_rss + master_own) / 1024,
            "instance_peak_mb": (worker_peak + master_own) / 1024,
            "worker_rss_mb": worker_rss / 1024,
            "worker_peak_rss_mb": worker_peak / 1024,
            "master_written_mb": master_own / 1024,
            "rss_sum_mb": sum(s["VmRSS"] for s in status.values()) / 1024,
        }


def _status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def _private_dirty_kb(pid: int) -> int:
    """Pages this process has written that no other process maps."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    return 0
