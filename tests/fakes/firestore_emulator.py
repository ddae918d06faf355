"""Start/stop the Node Firestore emulator (@firestore-emulator/server) on loopback.

The Node side lives in tests/emulator (package.json + package-lock.json + start.js);
install it once with `npm ci --prefix tests/emulator`. Point google-cloud-firestore at it
with FIRESTORE_EMULATOR_HOST=<emulator.host> and `firestore.Client(project="demo")`.

The emulator keeps its data in memory: `restart()` (same port) starts empty.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Self

from relay.sandbox.net import LOOPBACK, Service, free_port

EMULATOR_DIR = Path(__file__).resolve().parents[1] / "emulator"
INSTALL_HINT = "run npm ci --prefix tests/emulator"


class FirestoreEmulatorError(RuntimeError):
    pass


def missing_reason(emulator_dir: Path = EMULATOR_DIR, node: str = "node") -> str | None:
    """Why the emulator cannot start here (for pytest.skip), or None if it can."""
    if shutil.which(node) is None:
        return f"Firestore emulator needs Node.js: {node!r} is not on PATH"
    if not (emulator_dir / "node_modules" / "@firestore-emulator" / "server").is_dir():
        return f"Firestore emulator is not installed in {emulator_dir}: {INSTALL_HINT}"
    return None


class FirestoreEmulator(Service):
    def __init__(
        self,
        port: int | None = None,
        *,
        startup_timeout: float = 20.0,
        node: str = "node",
        emulator_dir: Path = EMULATOR_DIR,
    ) -> None:
        self.startup_timeout = startup_timeout
        self.node = node
        self.emulator_dir = emulator_dir
        self._port = port
        self._proc: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._output_lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FirestoreEmulator is not started")
        return self._port

    @property
    def host(self) -> str:
        """host:port, the value for FIRESTORE_EMULATOR_HOST."""
        return f"{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        return {"FIRESTORE_EMULATOR_HOST": self.host}

    def output(self) -> str:
        """Everything the Node process printed so far."""
        with self._output_lock:
            return "".join(self._output)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        reason = missing_reason(self.emulator_dir, self.node)
        if reason is not None:
            raise FirestoreEmulatorError(reason)
        if self._port is None:
            self._port = free_port()
        self._spawn()
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> Self:
        """Stop and start again on the same port (the data is lost)."""
        self.stop()
        return self.start()

    def _spawn(self) -> None:
        with self._output_lock:
            self._output.clear()
        proc = subprocess.Popen(
            [self.node, str(self.emulator_dir / "start.js"), str(self.port)],
            cwd=self.emulator_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        assert proc.stdout is not None
        threading.Thread(
            target=self._drain,
            args=(proc.stdout, f"ready {self.port}", ready),
            name=f"firestore-emulator-{self.port}",
            daemon=True,
        ).start()
        self._proc = proc
        self._wait_ready(proc, ready)

    def _drain(self, stream: IO[str], ready_line: str, ready: threading.Event) -> None:
        for line in stream:
            with self._output_lock:
                self._output.append(line)
            if line.strip() == ready_line:
                ready.set()

    def _wait_ready(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.05):
            if proc.poll() is not None:
                self._proc = None
                raise FirestoreEmulatorError(
                    f"Firestore emulator exited with {proc.returncode} before it was ready:\n"
                    f"{self.output()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise FirestoreEmulatorError(
                    f"Firestore emulator not ready on port {self.port} after "
                    f"{self.startup_timeout} s:\n{self.output()}"
                )
