"""`python -m relay`: tools for the people who wire a build system to the relay.

- `check`: validate a config and show its sources and routes (`--secrets`: can each be read?);
- `simulate`: run a payload through parsing and routing, offline, and show every Revyl call;
- `send`: sign a payload the way its source does and post it to a running relay;
- `sandbox`: the relay with fakes of Revyl and of every build system, and a `send` per source.

Each command imports what it needs when it runs, so `--help` stays instant. A user mistake
(a bad config, a missing file, an unknown source) is one line on stderr and exit 1, never a
traceback; argparse's own usage errors exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from relay.cli.common import CliError
from relay.errors import ConfigError, RelayError

Command = Callable[[argparse.Namespace], int]

SIMULATE_EXIT_CODES = """\
exit codes (the prediction is for a relay with a Revyl token, even in dry-run):
  0  the relay would start the routes' runs (or answer a chat-ops command)
  1  a usage or config mistake        2  a command-line usage error
  3  it would answer 4xx: refuse the payload or fail it for good (400, 422)
  4  it would answer 5xx: fail it in a way a retry may mend (502, 503)
  5  it would answer 200 `ignored`: no route runs"""


def _check(args: argparse.Namespace) -> int:
    from relay.cli.check import run

    return run(args)


def _simulate(args: argparse.Namespace) -> int:
    from relay.cli.simulate import run

    return run(args)


def _send(args: argparse.Namespace) -> int:
    from relay.cli.send import run

    return run(args)


def _sandbox(args: argparse.Namespace) -> int:
    from relay.cli.sandbox import run

    return run(args)


def _deploy_info(args: argparse.Namespace) -> int:
    from relay.cli.deploy_info import run

    return run(args)


def header(value: str) -> tuple[str, str]:
    """`--header 'Name: value'` as a (lower-cased name, value) pair."""
    name, sep, rest = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip().lower(), rest.strip()


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="the relay config (default: $RELAY_CONFIG, else the bundled relay.yaml)",
    )


def _header_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--header",
        "-H",
        dest="headers",
        metavar="NAME:VALUE",
        type=header,
        action="append",
        default=[],
        help=f"{help}; repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m relay",
        description="Operator tools for the Revyl build relay.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="validate a config and print its sources and routes",
        description="Validate the config, run the function's start-up checks against this "
        "shell's environment, and print its sources and routes as tables, with a warning for "
        "each route that cannot do what it says. Exit 0 when the config is valid and the relay "
        "would start here (with --secrets: and every secret can be read; an unset {env: ...} "
        "Revyl token is dry-run, not a failure); warnings do not change the exit code.",
    )
    _config_option(check)
    check.add_argument(
        "--secrets",
        action="store_true",
        help="also read every referenced secret (env variables and Secret Manager); "
        "values are never printed",
    )
    check.set_defaults(run=_check)

    simulate = commands.add_parser(
        "simulate",
        help="dry-run a payload: parse, filter, route, and list the Revyl calls",
        description="Run a payload (for example one copied from your build system's delivery "
        "log) through parsing, filtering and routing, without signatures or network. Prints "
        "the normalized build, the decision and every Revyl call the relay would make.",
        epilog=SIMULATE_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument("source", metavar="SOURCE", help="the source name (the URL path)")
    simulate.add_argument(
        "payload", metavar="PAYLOAD_FILE", type=Path, help="the request body ('-': stdin)"
    )
    _header_option(
        simulate, "a request header the source reads (e.g. 'X-GitHub-Event: workflow_run')"
    )
    simulate.add_argument("--json", action="store_true", help="print one JSON document")
    _config_option(simulate)
    simulate.set_defaults(run=_simulate)

    send = commands.add_parser(
        "send",
        help="sign a payload as its source does and post it to a running relay",
        description="Sign PAYLOAD_FILE the way SOURCE's sender signs it and POST it to the "
        "relay at --url, then print the status and the answer. Exit 0 on a 2xx answer.",
    )
    send.add_argument("source", metavar="SOURCE", help="the source name (the URL path)")
    send.add_argument(
        "payload", metavar="PAYLOAD_FILE", type=Path, help="the request body ('-': stdin)"
    )
    send.add_argument(
        "--url",
        required=True,
        help="the relay's base URL (/SOURCE is appended unless the URL already ends with it)",
    )
    send.add_argument(
        "--secret-env",
        metavar="NAME",
        help="read the signing secret from this environment variable (default: the "
        "source's own `secret:` reference from the config)",
    )
    _header_option(send, "an extra request header (e.g. 'X-GitHub-Event: release')")
    send.add_argument(
        "--delivery-id", metavar="ID", help="the delivery id for schemes that sign one"
    )
    send.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the answer (60)"
    )
    _config_option(send)
    send.set_defaults(run=_send)

    sandbox = commands.add_parser(
        "sandbox",
        help="run the relay against fakes of Revyl and every build system, on loopback",
        description="Start fakes of Revyl, of the GitHub, Bitrise, Codemagic and App Store "
        "Connect APIs, of Slack's response_url and a verdict webhook receiver, then the relay "
        "(functions-framework serving main.py) on a config wired to them. Print their URLs and, "
        "for each source, the `python -m relay send` command that posts its sample; then what "
        "the fakes receive, until Ctrl-C. No account or network needed (docs/sandbox.md).",
    )
    sandbox.add_argument(
        "--port", type=int, default=8080, help="the relay's port (default 8080; 0: any free one)"
    )
    sandbox.add_argument(
        "--dir",
        metavar="DIR",
        type=Path,
        help="write the config, the Slack command and the relay's log here and keep them "
        "(default: a temporary folder, removed on exit)",
    )
    sandbox.add_argument(
        "--print-config", action="store_true", help="also print the generated config"
    )
    sandbox.set_defaults(run=_sandbox)

    # For deploy.sh: the config's sources, secrets and store as tab-separated lines.
    info = commands.add_parser("deploy-info")
    _config_option(info)
    info.set_defaults(run=_deploy_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("relay").addHandler(logging.NullHandler())  # errors are reported here
    try:
        return int(args.run(args))
    except (CliError, ConfigError, RelayError) as exc:
        print(f"relay: {_message(exc)}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _message(exc: Exception) -> str:
    text = exc.message if isinstance(exc, RelayError) else str(exc)
    return text.replace("\n", "\n  ")
