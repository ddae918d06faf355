"""Idempotency: what was started for each event, so a redelivery starts nothing twice.

Per event key the store keeps a claim (who is handling it, since when), a state and, per
target, the `Execution` it produced. `claim` decides what a delivery may do:
- `new`: first delivery: run every target;
- `resume`: an earlier delivery ended partially, or its handler died (its claim is older than
  the lease): run only the targets not yet started;
- `done`: everything started already: answer `duplicate` with the recorded executions;
- `busy`: another delivery holds a live claim: answer 409 `in_progress`.

Stores, one module each, all held to one contract (tests/contract): `memory` (one process:
local runs, tests) and `firestore` (shared by every instance of a deployment). A shared store is
wrapped in `journaled`, which keeps what it could not write on this instance and writes it when
the store answers again, so an outage after runs started does not make a redelivery start them
again. `relay.wiring` builds the one a config asks for.

Whatever an event holds, a store takes it: keys and outcomes are made storable here (lone
surrogates spelled out, texts capped: `storable`) before any store writes them. A write the
shared store refuses for good (`Unstorable`: a value it cannot encode or hold) is parked by
the journal, never retried, and never holds up another event.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from relay.models import Execution
from relay.text import cut, valid_utf8

ClaimKind = Literal["new", "resume", "done", "busy"]
log = logging.getLogger("relay")

TEXT_CAP = 1000
"""Characters kept of any text an outcome stores that came from Revyl or a payload (an error
message, an execution id, a status, a URL), and of the event key as a document shows it."""
CAPPED_FIELDS = ("error", "execution_id", "status", "report_url", "build_version_id")


class Unstorable(Exception):
    """The store refuses this event for good (a value it cannot encode or hold, a document
    over its size limit): writing it again fails again, so it is parked, not retried."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"the event store refuses event {storable_text(key)!r}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Claim:
    kind: ClaimKind
    executions: dict[str, Execution] = field(default_factory=dict)


class EventStore(ABC):
    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds

    @abstractmethod
    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        """Take the event for this delivery, or say why not (see the module docstring)."""

    @abstractmethod
    def record(self, key: str, execution: Execution) -> None:
        """Persist one target's outcome as soon as it is known."""

    @abstractmethod
    def release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        """Write every outcome and end the claim: `done` when every target has started."""

    def decide(self, state: str, claimed_at: float, now: float) -> ClaimKind:
        if state == "done":
            return "done"
        if state == "claimed" and now - claimed_at < self.lease_seconds:
            return "busy"
        return "resume"


def merge(old: Execution | None, new: Execution) -> Execution:
    """What a store keeps of a target: a started execution is never overwritten by a later
    failure of the same target; the new outcome is kept as `storable` makes it."""
    return old if old is not None and old.outcome == "started" else storable(new)


def storable(execution: Execution) -> Execution:
    """The outcome with every text from outside storable and capped (`TEXT_CAP`). The target's
    identity (route, test or workflow id) is the config's and is kept as it is."""
    updates = {
        name: kept
        for name in CAPPED_FIELDS
        if isinstance(value := getattr(execution, name), str)
        and (kept := storable_text(value)) is not value
    }
    return execution.model_copy(update=updates) if updates else execution


def storable_text(text: str, cap: int = TEXT_CAP) -> str:
    """`text` as any store can hold it: valid UTF-8, at most `cap` characters."""
    return cut(valid_utf8(text), cap)
