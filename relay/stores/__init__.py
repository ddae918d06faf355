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
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from relay.models import Execution

ClaimKind = Literal["new", "resume", "done", "busy"]
log = logging.getLogger("relay")


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
    """A started execution is never overwritten by a later failure of the same target."""
    return old if old is not None and old.outcome == "started" else new
