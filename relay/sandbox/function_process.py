"""Run the relay as production runs it: `python -m functions_framework` in a subprocess.

    with FunctionProcess(env={"RELAY_CONFIG": ...}) as fn:
        requests.post(fn.url + "/eas", ...)
        assert "delivery accepted" in fn.log_text()

stdout and stderr go to one log file (`.log_path`); PYTHONUNBUFFERED=1 is set unless
`env` overrides it, so log lines are in the file as soon as they are printed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from relay.sandbox.net import LOOPBACK, Service, free_port, port_accepts

REPO_ROOT = Path(__file__).resolve().parents[2]


class FunctionProcessError(RuntimeError):
    pass


class PortTaken(FunctionProcessError):
    """Another process answers on the port this one was to listen on."""


START_ATTEMPTS = 3
RELAY_HEALTH = b'"dry_run"'  # the relay's GET /healthz: {"status": "ok", "dry_run": …}


class FunctionProcess(Service):
    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | str = REPO_ROOT,
        source: str = "main.py",
        target: str = "relay_webhook",
        port: int | None = None,
        python: str = sys.executable,
        log_path: Path | str | None = None,
        startup_timeout: float = 30.0,
        health_path: str = "/healthz",
        health_marker: bytes | None = RELAY_HEALTH,
    ) -> None:
        self.env = dict(env or {})
        self.cwd = Path(cwd)
        self.source = source
        self.target = target
        self.python = python
        self.startup_timeout = startup_timeout
        self.health_path = health_path
        # what this function's health answer holds, to tell it from another process that took
        # the port first (None: any answer will do)
        self.health_marker = health_marker
        self.health_status: int | None = None
        """Status of the readiness GET (any HTTP answer counts as ready)."""
        self._port = port
        self._log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    # --- properties ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FunctionProcess is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        if self._log_path is None:
            raise RuntimeError("FunctionProcess is not started")
        return self._log_path

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process and wait until it answers. A port picked here may be taken by
        another process between the pick and the bind (tests run in parallel): then it is
        started again on another port."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        chosen = self._port is not None
        for attempt in range(1, START_ATTEMPTS + 1):
            if not chosen:
                self._port = free_port()
            try:
                return self._start_once()
            except PortTaken:
                if chosen or attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> Self:
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"function-{self._port}-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the workers
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after `timeout`; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        self._signal_group(proc, signal.SIGKILL)  # leftover workers, if any
        return proc.returncode

    # --- internals -------------------------------------------------------------------

    def _command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "functions_framework",
            "--target",
            self.target,
            "--source",
            self.source,
            "--port",
            str(self.port),
            "--host",
            LOOPBACK,
        ]

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)  # the group made by start_new_session

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self._raise_if_exited()
            if port_accepts(LOOPBACK, self.port):
                probed = self._probe()
                if probed is not None:
                    self.health_status, body = probed
                    if self.health_marker is not None and self.health_marker not in body:
                        raise PortTaken(f"port {self.port} answers, but not as this function")
                    return
            time.sleep(0.05)
        raise FunctionProcessError(
            f"function not ready on {self.url}{self.health_path} after "
            f"{self.startup_timeout} s; log:\n{self.log_text()}"
        )

    def _raise_if_exited(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise FunctionProcessError(
                f"function process exited with {code} during startup; log:\n{self.log_text()}"
            )

    def _probe(self) -> tuple[int, bytes] | None:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2)
        try:
            conn.request("GET", self.health_path)
            answer = conn.getresponse()
            return answer.status, answer.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
