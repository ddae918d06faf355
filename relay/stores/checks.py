"""What is followed and what was reported: the check store, shared by every instance.

A check (`relay.verdicts.check.Check`) is opened once per event and route, observed by each
poll, and settled once: the first verdict written wins, whoever else computes one. Each report
(a target and a phase of one check) is claimed before it is sent, so it is sent once however
many deliveries of its task run at the same time: `claim_report` answers `send` to one of them
(`done` once it was sent or refused for good, `busy` while another holds it); a sender that died
holding it loses it after `REPORT_LEASE` seconds.

Stores: `MemoryCheckStore` (one process) here, `FirestoreCheckStore` in
`relay.stores.firestore_checks`; both pass tests/contract/test_check_store.py.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relay.verdicts.check import Check, Run, Verdict, merge_runs

REPORT_LEASE = 120.0  # seconds a report claim holds: one send takes at most a minute
ReportState = Literal["sent", "refused", "skipped", "gave_up"]


@dataclass(frozen=True)
class ReportClaim:
    kind: Literal["send", "done", "busy"]
    state: str | None = None  # the final state when `done`
    data: Mapping[str, Any] = field(default_factory=dict)  # what the delivery left


class CheckStore(ABC):
    @abstractmethod
    def open(self, check: Check) -> tuple[Check, bool]:
        """Store a new check, or merge its runs into the stored one (a redelivery that
        started more); the stored check, and whether it was new."""

    @abstractmethod
    def get(self, check_id: str) -> Check | None: ...

    @abstractmethod
    def observe(self, check_id: str, runs: Mapping[str, Run], polls: int) -> None:
        """Keep what the latest poll saw (an unsettled check only)."""

    @abstractmethod
    def settle(self, check_id: str, verdict: Verdict, runs: Mapping[str, Run], now: float) -> Check:
        """Write the verdict unless one is written; the check as settled (the first verdict)."""

    @abstractmethod
    def claim_report(self, check_id: str, key: str, claim_id: str, now: float) -> ReportClaim: ...

    @abstractmethod
    def end_report(
        self,
        check_id: str,
        key: str,
        claim_id: str,
        state: ReportState,
        data: Mapping[str, Any],
        now: float,
    ) -> None:
        """The report is done for good: sent (with what it left), refused, skipped."""

    @abstractmethod
    def release_report(self, check_id: str, key: str, claim_id: str) -> None:
        """The send failed in a way a retry may fix: let the next attempt claim it at once."""

    @abstractmethod
    def report(self, check_id: str, key: str) -> ReportClaim | None:
        """A report's state without claiming it (None: never claimed)."""


@dataclass
class HeldReport:
    claim_id: str
    claimed_at: float
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def decide_claim(report: HeldReport | None, claim_id: str, now: float) -> ReportClaim | None:
    """What a claim of `report` is told; None means the claimant takes it."""
    if report is None:
        return None
    if report.state is not None:
        return ReportClaim("done", report.state, dict(report.data))
    if report.claim_id == claim_id or now - report.claimed_at >= REPORT_LEASE:
        return None
    return ReportClaim("busy")


class MemoryCheckStore(CheckStore):
    """The checks of one process (local runs, tests)."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._reports: dict[tuple[str, str], HeldReport] = {}
        self._lock = threading.Lock()

    def open(self, check: Check) -> tuple[Check, bool]:
        with self._lock:
            stored = self._checks.get(check.id)
            if stored is None:
                self._checks[check.id] = check
                return check, True
            if stored.verdict is None:
                runs = merge_runs(stored.runs, check.runs)
                stored = self._checks[check.id] = stored.model_copy(update={"runs": runs})
            return stored, False

    def get(self, check_id: str) -> Check | None:
        with self._lock:
            return self._checks.get(check_id)

    def observe(self, check_id: str, runs: Mapping[str, Run], polls: int) -> None:
        with self._lock:
            stored = self._checks.get(check_id)
            if stored is not None and stored.verdict is None:
                merged = {**stored.runs, **runs}
                polls = max(polls, stored.polls)
                self._checks[check_id] = stored.model_copy(update={"runs": merged, "polls": polls})

    def settle(self, check_id: str, verdict: Verdict, runs: Mapping[str, Run], now: float) -> Check:
        with self._lock:
            stored = self._checks[check_id]
            if stored.verdict is None:
                update = {"verdict": verdict, "runs": {**stored.runs, **runs}, "finished_at": now}
                stored = self._checks[check_id] = stored.model_copy(update=update)
            return stored

    def claim_report(self, check_id: str, key: str, claim_id: str, now: float) -> ReportClaim:
        with self._lock:
            told = decide_claim(self._reports.get((check_id, key)), claim_id, now)
            if told is None:
                self._reports[(check_id, key)] = HeldReport(claim_id, now)
                return ReportClaim("send")
            return told

    def end_report(
        self,
        check_id: str,
        key: str,
        claim_id: str,
        state: ReportState,
        data: Mapping[str, Any],
        now: float,
    ) -> None:
        with self._lock:
            self._reports[(check_id, key)] = HeldReport(claim_id, now, state, dict(data))

    def release_report(self, check_id: str, key: str, claim_id: str) -> None:
        with self._lock:
            report = self._reports.get((check_id, key))
            if report is not None and report.claim_id == claim_id and report.state is None:
                del self._reports[(check_id, key)]

    def report(self, check_id: str, key: str) -> ReportClaim | None:
        with self._lock:
            report = self._reports.get((check_id, key))
        if report is None:
            return None
        if report.state is None:
            return ReportClaim("busy")
        return ReportClaim("done", report.state, dict(report.data))
