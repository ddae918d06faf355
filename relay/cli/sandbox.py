"""`python -m relay sandbox`: every source working on loopback, without any account.

Starts fakes of Revyl and of every build system API the relay calls (GitHub, Bitrise, Codemagic,
App Store Connect, Slack's response_url) and a Standard Webhooks receiver for the verdicts, then
the relay as production runs it on a config wired to them; prints their URLs and, for each
source, the `python -m relay send` command that posts its sample. Then it shows what the fakes
receive, until Ctrl-C (SIGINT) or SIGTERM stops the relay and every fake. See docs/sandbox.md.
"""

from __future__ import annotations

import argparse
import io
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from relay.cli.common import CliError
from relay.sandbox.function_process import FunctionProcessError
from relay.sandbox.net import LOOPBACK
from relay.sandbox.stage import Sandbox

POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal closed


class Stop(Exception):
    """A stop signal arrived: stop everything."""


def run(args: argparse.Namespace) -> int:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # a reader of the pipe sees each line
    port = args.port or None  # 0: any free port, picked as the relay starts (it retries)
    if port is not None and not port_is_free(port):
        raise CliError(
            f"port {port} is in use (another relay or sandbox?); pick another: "
            f"python -m relay sandbox --port {port + 1}"
        )
    with stop_signals(), workdir(args.dir) as folder:
        sandbox = Sandbox(folder, port=port)
        try:
            where = f"on port {port}" if port else "on a free port"
            print(f"relay sandbox: starting the fakes, then the relay {where}…")
            sandbox.start()
            if args.print_config:
                print(f"--- {sandbox.config_path}\n{sandbox.config_path.read_text()}---")
            print(banner(sandbox, Path.cwd()))
            watch(sandbox)
        except Stop:
            pass
        except FunctionProcessError as exc:
            raise CliError(f"the relay did not start: {exc}") from None
        finally:
            for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the cleanup short
                signal.signal(signum, signal.SIG_IGN)
            code = sandbox.stop()
            print(f"relay sandbox: stopped the relay (exit code {code}) and every fake")
    return 0


def port_is_free(port: int) -> bool:
    try:
        socket.create_server((LOOPBACK, port)).close()
    except OSError:
        return False
    return True


@contextmanager
def stop_signals() -> Iterator[None]:
    """A stop signal raises Stop in the main thread (even while the relay starts): the relay
    runs in its own process group, which only the sandbox stops."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def workdir(given: Path | None) -> Iterator[Path]:
    """Where the config, the Slack command and the relay's log go: `--dir` (kept), else a
    temporary folder removed on exit."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="relay-sandbox-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def banner(sandbox: Sandbox, cwd: Path) -> str:
    assert sandbox.relay is not None
    relay = sandbox.relay
    width = max(len(fake.label) for fake in sandbox.fakes)
    lines = [
        f"relay sandbox: the relay on {relay.url} (pid {relay.pid}), every source wired to fakes",
        f"  config  {sandbox.config_path}",
        f"  log     {sandbox.log_path}",
        "fakes:",
        *(f"  {fake.label.ljust(width)}  {fake.server.url}" for fake in sandbox.fakes),
        "",
        "Post each source's sample from another terminal, in this directory: each answers",
        "`triggered` (sent again: `duplicate`, nothing new starts). Ctrl-C stops everything.",
    ]
    for sample, command in sandbox.commands(cwd):
        lines += ["", f"# {sample.source}: {sample.what}", command]
    lines += ["", "What the fakes receive:"]
    return "\n".join(lines)


def watch(sandbox: Sandbox) -> None:
    """Print what the fakes receive until a signal (Stop) or the relay exits."""
    assert sandbox.relay is not None
    while True:
        for line in sandbox.activity():
            print(f"  {line}")
        code = sandbox.relay.returncode
        if code is not None:
            tail = "\n".join(sandbox.relay.log_text().splitlines()[-20:])
            raise CliError(f"the relay exited with {code}; the end of its log:\n{tail}")
        time.sleep(POLL_SECONDS)
