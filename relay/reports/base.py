"""What every report target is: a check at a phase in, one delivery to the team's tool out.

A target gets the check (`relay.verdicts.check.Check`) at `started` (its runs are running)
and at `finished` (its verdict), and what its own `started` delivery left (`earlier`: a Slack
message's `ts`, say). It answers `Sent(data)` or `Skipped(reason)`, or raises `RetryLater`
(the tool answered 5xx or 429, or could not be reached) or `Refused` (a 4xx or a setting to
fix: retrying will not help). The engine (`relay.verdicts.follower`) makes each delivery
happen once per check, phase and target, logs every attempt, and retries.

A phase that needs more than one call that must not be repeated (a Slack message, then a
thread reply under it) names its later calls in `steps_after`: each is claimed and recorded on
its own, so a retry repeats only the call that failed (`report_step` gets what the earlier
ones left).

Besides the `reports:` of the config, wiring adds one implicit target per chat source, named
`@<source>` (`origin_target_name`): it answers where a chat command that started a check asked
from (`Check.origin`). `reports:` names may not start with `@`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from relay.config import ReportSettings
from relay.secrets import SecretReader
from relay.verdicts.check import Check, Phase


@dataclass(frozen=True)
class Sent:
    data: Mapping[str, Any] = field(default_factory=dict)  # kept for the target's later phases
    detail: str | None = None  # for the log line (where it went)


@dataclass(frozen=True)
class Skipped:
    reason: str


class Refused(Exception):
    """The target refused the delivery, or a setting is wrong: `message` says what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


ORIGIN_PREFIX = "@"


def origin_target_name(source: str) -> str:
    return f"{ORIGIN_PREFIX}{source}"


class ReportTarget:
    """One configured report target (`reports.<name>` in the config)."""

    type: ClassVar[str]
    Settings: ClassVar[builtins.type[ReportSettings]] = ReportSettings

    def __init__(self, name: str, settings: ReportSettings, secrets: SecretReader) -> None:
        self.name = name
        self.settings = settings
        self.secrets = secrets

    def report(self, phase: Phase, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        raise NotImplementedError

    def secret_problem(self, key: str, value: str) -> str | None:
        """Why the value of its secret `key` (a dotted key under the target) cannot serve,
        or None (for `check --secrets`)."""
        return None

    def describe(self) -> str:
        """Where it reports, for `check` (no secret)."""
        return self.type

    def steps_after(self, phase: Phase, check: Check) -> tuple[str, ...]:
        """The calls of `phase` after `report`'s, once it sent (none by default)."""
        return ()

    def report_step(self, step: str, check: Check, earlier: Mapping[str, Any]) -> Sent | Skipped:
        """One of `steps_after`; `earlier` holds what the phase's earlier calls left."""
        raise NotImplementedError
