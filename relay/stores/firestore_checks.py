"""The Firestore check store: checks and their reports, shared by every instance.

Collection `<dedup.collection>-checks` (same database as the events):

    <check id>              the check: event, route, build, runs (what the latest poll saw),
                            report_to, created_at, give_up_at, origin, polls; once settled
                            `verdict`, `finished_at` and `final_runs` (the runs at the verdict)
    <check id>~verdict      created by the first `settle`: the verdict every later one reads
    <check id>~r~<digest>   one report (target and phase): claim_id, claimed_at, state, data

Every decision rests on `create()`, which is atomic (as for the event store: see
relay/stores/firestore.py for why not transactions): the first `settle` creates the verdict
document, the first claim of a report creates its document; a claim older than
`REPORT_LEASE` is taken over by a conditional rewrite of the claim fields. `observe` writes
only `runs`, so a slow poll can never change what a settled check reports (`final_runs`).
Every document carries the TTL field `expires_at` (`dedup.ttl_days` after its last write).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from relay.config import DedupSettings
from relay.stores.checks import (
    REPORT_LEASE,
    CheckStore,
    HeldReport,
    ReportClaim,
    ReportState,
    decide_claim,
)
from relay.stores.firestore import RETRY_BUDGET, TTL_FIELD, call_options, expiry
from relay.verdicts.check import Check, Run, Verdict, merge_runs


class FirestoreCheckStore(CheckStore):
    def __init__(
        self, settings: DedupSettings, client: Callable[[], Any], retry_budget: float = RETRY_BUDGET
    ) -> None:
        self.settings = settings
        self.client = client  # the event store's client: one channel per instance
        self.retry_budget = retry_budget
        self._options: dict[str, Any] | None = None

    # checks

    def open(self, check: Check) -> tuple[Check, bool]:
        from google.api_core import exceptions

        fields = {**_stored(check), TTL_FIELD: self._expiry(check.created_at)}
        try:
            self._doc(check.id).create(fields, **self._call())
            return check, True
        except exceptions.AlreadyExists:
            pass
        stored = self.get(check.id)
        if stored is None:  # expired between the two calls
            self._doc(check.id).set(fields, **self._call())
            return check, True
        if stored.verdict is not None:
            return stored, False
        runs = merge_runs(stored.runs, check.runs)
        added = {key: run for key, run in runs.items() if stored.runs.get(key) != run}
        if added:
            self._doc(check.id).update(self._run_fields(added), **self._call())
        return stored.model_copy(update={"runs": runs}), False

    def get(self, check_id: str) -> Check | None:
        snapshot = self._doc(check_id).get(**self._call())
        if not snapshot.exists:
            return None
        data = dict(snapshot.to_dict() or {})
        data.pop(TTL_FIELD, None)
        final = data.pop("final_runs", None)
        if data.get("verdict") and final is not None:
            data["runs"] = final
        return Check.model_validate(data)

    def observe(self, check_id: str, runs: Mapping[str, Run], polls: int) -> None:
        if runs or polls:
            fields = {**self._run_fields(runs), "polls": polls}
            self._doc(check_id).update(fields, **self._call())

    def settle(self, check_id: str, verdict: Verdict, runs: Mapping[str, Run], now: float) -> Check:
        from google.api_core import exceptions

        stored = self.get(check_id)
        if stored is None:
            raise LookupError(f"check {check_id} is not stored")
        final = {key: run.model_dump() for key, run in {**stored.runs, **runs}.items()}
        decided: dict[str, Any] = {"verdict": verdict, "final_runs": final, "finished_at": now}
        marker = self._doc(f"{check_id}~verdict")
        try:
            marker.create({**decided, TTL_FIELD: self._expiry(now)}, **self._call())
        except exceptions.AlreadyExists:
            decided = marker.get(**self._call()).to_dict() or decided  # the first one's
        self._doc(check_id).update(dict(decided), **self._call())
        settled = stored.model_copy(
            update={
                "verdict": decided["verdict"],
                "finished_at": decided["finished_at"],
                "runs": {k: Run.model_validate(v) for k, v in decided["final_runs"].items()},
            }
        )
        return settled

    # reports

    def claim_report(self, check_id: str, key: str, claim_id: str, now: float) -> ReportClaim:
        from google.api_core import exceptions

        ref = self._report_doc(check_id, key)
        fields = {"check": check_id, "key": key, "claim_id": claim_id, "claimed_at": now}
        try:
            ref.create({**fields, TTL_FIELD: self._expiry(now)}, **self._call())
            return ReportClaim("send")
        except exceptions.AlreadyExists:
            pass
        snapshot = ref.get(**self._call())
        held = _report(snapshot.to_dict() or {})
        told = decide_claim(held, claim_id, now)
        if told is not None:
            return told
        # a stale claim (its holder died): take it over if nobody did since we read it
        try:
            option = self.client().write_option(last_update_time=snapshot.update_time)
            ref.update(fields, option=option, **self._call())
        except exceptions.FailedPrecondition:
            return ReportClaim("busy")
        return ReportClaim("send")

    def end_report(
        self,
        check_id: str,
        key: str,
        claim_id: str,
        state: ReportState,
        data: Mapping[str, Any],
        now: float,
    ) -> None:
        fields = {
            "check": check_id,
            "key": key,
            "claim_id": claim_id,
            "claimed_at": now,
            "state": state,
            "data": dict(data),
            TTL_FIELD: self._expiry(now),
        }
        self._report_doc(check_id, key).set(fields, **self._call())

    def release_report(self, check_id: str, key: str, claim_id: str) -> None:
        ref = self._report_doc(check_id, key)
        held = _report(ref.get(**self._call()).to_dict() or {})
        if held is not None and held.claim_id == claim_id and held.state is None:
            ref.delete(**self._call())

    def report(self, check_id: str, key: str) -> ReportClaim | None:
        held = _report(self._report_doc(check_id, key).get(**self._call()).to_dict() or {})
        if held is None:
            return None
        if held.state is None:
            return ReportClaim("busy")
        return ReportClaim("done", held.state, held.data)

    # plumbing

    def _collection(self) -> Any:
        return self.client().collection(f"{self.settings.collection}-checks")

    def _doc(self, doc_id: str) -> Any:
        return self._collection().document(doc_id)

    def _report_doc(self, check_id: str, key: str) -> Any:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self._doc(f"{check_id}~r~{digest}")

    def _run_fields(self, runs: Mapping[str, Run]) -> dict[str, Any]:
        from google.cloud.firestore_v1.field_path import FieldPath

        return {FieldPath("runs", key).to_api_repr(): run.model_dump() for key, run in runs.items()}

    def _expiry(self, now: float) -> datetime.datetime:
        return expiry(now, self.settings.ttl_days)

    def _call(self) -> dict[str, Any]:
        if self._options is None:
            self._options = call_options(self.retry_budget)
        return self._options


def _stored(check: Check) -> dict[str, Any]:
    return check.model_dump()


def _report(data: Mapping[str, Any]) -> HeldReport | None:
    if not data.get("claim_id"):
        return None
    return HeldReport(
        claim_id=str(data["claim_id"]),
        claimed_at=float(data.get("claimed_at") or 0),
        state=data.get("state"),
        data=dict(data.get("data") or {}),
    )


__all__ = ["REPORT_LEASE", "FirestoreCheckStore"]
