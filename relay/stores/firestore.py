"""The Firestore event store: one document per event, shared by every instance of the relay.

Document `<collection>/<sha256 of the event key>` (the key encoded so that any key has one,
and distinct keys distinct ones: UTF-8 with lone surrogates passed through):

    key          the event key, as the logs show it (eas:<build id>:finished, ...), made
                 storable: lone surrogates spelled out, at most TEXT_CAP characters
    state        claimed | partial | done
    claim_id     the delivery holding or last holding the event
    claimed_at   when it was claimed (Unix seconds): a claim older than the lease is taken over
    generation   how many deliveries have held it (1, then one more per takeover)
    executions   {target: Execution}: what each test/workflow of each route became
    expires_at   the TTL field: Firestore deletes the document `ttl_days` after its last write

Every decision about who may start runs rests on `create()`, which is atomic: the first delivery
creates the event's document (`new`); a delivery resuming a partial or abandoned event must
create the lock document `<id>~<generation + 1>` (`resume`), which exactly one of any number of
concurrent deliveries can do, the others being `busy`. `record` is one field write per started
target (`executions.<target>`), with no read, so targets starting at once do not contend;
`release` reads, merges (a start is never overwritten) and writes conditionally on the update
time it read.

Why not `client.transaction()`: its begin call retries an unreachable Firestore for 60 s inside
the client library, while every call here carries a short timeout and retry budget, so an outage
is a prompt 503 rather than a hung webhook. (The emulator the tests use honours `create()` but
neither transactions' isolation nor update-time preconditions, which is one more reason the
claim relies on `create()` alone.)

Errors Firestore will repeat however often it is asked (an invalid argument, a document over
1 MiB, a value with no UTF-8 encoding) are raised as `Unstorable`, so the journal parks that
event instead of retrying it; anything else (unavailable, deadline exceeded, aborted,
permission denied...) may pass and is raised as it is.

`google-cloud-firestore` is imported on first use: a relay with `dedup: {store: memory}` never
loads it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

from relay.config import DedupSettings
from relay.models import Execution
from relay.stores import Claim, EventStore, Unstorable, merge, storable, storable_text

CALL_TIMEOUT = 3.0  # seconds, per attempt
RETRY_BUDGET = 4.0  # seconds of retries per call
CAS_ATTEMPTS = 5  # conditional writes lost to another writer before giving up
TTL_FIELD = "expires_at"


class FirestoreEventStore(EventStore):
    def __init__(
        self, settings: DedupSettings, project: str | None, retry_budget: float = RETRY_BUDGET
    ) -> None:
        super().__init__(settings.lease_seconds)
        self.settings = settings
        self.retry_budget = retry_budget
        self.project = project
        self._client: Any = None
        self._call_options: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # the three operations

    def claim(self, key: str, claim_id: str, now: float) -> Claim:
        with refused_for_good_as_unstorable(key):
            return self._claim(key, claim_id, now)

    def record(self, key: str, execution: Execution) -> None:
        with refused_for_good_as_unstorable(key):
            self._record(key, execution)

    def release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        with refused_for_good_as_unstorable(key):
            self._release(key, claim_id, executions, done, now)

    def _claim(self, key: str, claim_id: str, now: float) -> Claim:
        from google.api_core import exceptions

        ref = self._ref(key)
        fields = {
            "key": storable_text(key),
            "state": "claimed",
            "claim_id": claim_id,
            "claimed_at": now,
            "generation": 1,
            "executions": {},
            TTL_FIELD: self._expiry(now),
        }
        try:
            ref.create(fields, **self._call())
            return Claim("new")
        except exceptions.AlreadyExists:
            pass
        snapshot = ref.get(**self._call())
        if not snapshot.exists:  # expired (TTL) between the two calls: claim it afresh
            ref.create(fields, **self._call())
            return Claim("new")
        data = snapshot.to_dict() or {}
        executions = _executions(data)
        if data.get("claim_id") == claim_id:  # our own create, answered late and retried
            return Claim("new")
        kind = self.decide(str(data.get("state")), float(data.get("claimed_at") or 0), now)
        if kind != "resume":
            return Claim(kind, executions)
        return self._take_over(key, claim_id, now, int(data.get("generation") or 1), executions)

    def _take_over(
        self, key: str, claim_id: str, now: float, generation: int, executions: dict[str, Execution]
    ) -> Claim:
        """Resume an event: whoever creates the lock document of the next generation first
        holds it (`create()` is atomic), every other delivery is `busy`. A lock whose holder
        died before it could update the event is skipped once it is older than the lease."""
        from google.api_core import exceptions

        for _ in range(CAS_ATTEMPTS):
            generation += 1
            lock = self._ref(key, generation)
            try:
                lock.create(
                    {
                        "key": storable_text(key),
                        "claim_id": claim_id,
                        "claimed_at": now,
                        TTL_FIELD: self._expiry(now),
                    },
                    **self._call(),
                )
            except exceptions.AlreadyExists:
                held = lock.get(**self._call()).to_dict() or {}
                if held.get("claim_id") == claim_id:
                    pass  # our own create, answered late and retried
                elif now - float(held.get("claimed_at") or 0) < self.lease_seconds:
                    return Claim("busy", executions)
                else:
                    continue
            update = {
                "state": "claimed",
                "claim_id": claim_id,
                "claimed_at": now,
                "generation": generation,
                TTL_FIELD: self._expiry(now),
            }
            self._ref(key).update(update, **self._call())
            return Claim("resume", executions)
        raise RuntimeError(f"event {key}: {CAS_ATTEMPTS} stale locks in a row")

    def _record(self, key: str, execution: Execution) -> None:
        """Only started targets are written here (one blind field write each); failures are
        written by `release`, which merges, so a failure never overwrites a start."""
        if execution.outcome != "started":
            return
        from google.cloud.firestore_v1.field_path import FieldPath

        path = FieldPath("executions", execution.target).to_api_repr()
        self._ref(key).update({path: _stored(execution)}, **self._call())

    def _release(
        self, key: str, claim_id: str, executions: list[Execution], done: bool, now: float
    ) -> None:
        from google.api_core import exceptions

        ref = self._ref(key)
        for _ in range(CAS_ATTEMPTS):
            snapshot = ref.get(**self._call())
            data = (snapshot.to_dict() or {}) if snapshot.exists else {}
            merged = _executions(data)
            for execution in executions:
                merged[execution.target] = merge(merged.get(execution.target), execution)
            fields: dict[str, Any] = {
                "executions": {target: _stored(e) for target, e in merged.items()},
                TTL_FIELD: self._expiry(now),
            }
            if data.get("claim_id", claim_id) == claim_id:
                fields["state"] = "done" if done else "partial"
            try:
                if snapshot.exists:
                    ref.update(fields, option=self._since(snapshot), **self._call())
                else:  # lost (a store restored empty): write the outcome as it stands
                    lost = {"key": storable_text(key), "claim_id": claim_id, "claimed_at": now}
                    ref.create({**lost, **fields}, **self._call())
                return
            except (exceptions.FailedPrecondition, exceptions.AlreadyExists):
                continue
        raise RuntimeError(f"event {key}: lost {CAS_ATTEMPTS} conditional writes in a row")

    # plumbing

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import firestore

                self._client = firestore.Client(
                    project=self.project, database=self.settings.database
                )
            return self._client

    def _ref(self, key: str, generation: int = 1) -> Any:
        """The event's document, or (generation > 1) the lock document of a takeover."""
        doc_id = document_id(key)
        if generation > 1:
            doc_id = f"{doc_id}~{generation}"
        return self.client().collection(self.settings.collection).document(doc_id)

    def _since(self, snapshot: Any) -> Any:
        return self.client().write_option(last_update_time=snapshot.update_time)

    def _expiry(self, now: float) -> datetime.datetime:
        return expiry(now, self.settings.ttl_days)

    def _call(self) -> dict[str, Any]:
        """The retry and timeout every Firestore call carries (built once, on first use)."""
        if self._call_options is None:
            self._call_options = call_options(self.retry_budget)
        return self._call_options


def expiry(now: float, ttl_days: int) -> datetime.datetime:
    """The TTL field's value: Firestore deletes the document `ttl_days` after `now`."""
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return moment + datetime.timedelta(days=ttl_days)


def call_options(retry_budget: float) -> dict[str, Any]:
    """What every call of the relay's Firestore stores carries: a short timeout and retries
    of transient errors within `retry_budget` seconds, so an outage is a prompt answer."""
    from google.api_core import exceptions
    from google.api_core.retry import Retry, if_exception_type

    transient = if_exception_type(
        exceptions.ServiceUnavailable,
        exceptions.DeadlineExceeded,
        exceptions.InternalServerError,
        exceptions.ResourceExhausted,
    )
    retry = Retry(
        predicate=transient, initial=0.1, maximum=1.0, multiplier=2.0, timeout=retry_budget
    )
    return {"retry": retry, "timeout": min(CALL_TIMEOUT, retry_budget)}


def document_id(key: str) -> str:
    """Event keys may hold `/` (not allowed in a document id): the id is the key's SHA-256.
    `surrogatepass` encodes every string, a lone surrogate too, and distinct strings to
    distinct bytes (`surrogateescape` failed on `\ud800` and gave `\udcc3\udca9` the
    bytes of `é`)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@contextlib.contextmanager
def refused_for_good_as_unstorable(key: str) -> Iterator[None]:
    """Raise what Firestore will refuse again however often it is asked as `Unstorable`."""
    try:
        yield
    except Exception as exc:
        if refused_for_good(exc):
            raise Unstorable(key, f"{type(exc).__name__}: {exc}") from exc
        raise


def refused_for_good(exc: BaseException) -> bool:
    """Permanent, for this event: Firestore refused the value itself (invalid argument, out of
    range: a document over 1 MiB, a value it cannot index), or the client could not encode it
    (a string with no UTF-8, a value of a type Firestore has none for). Everything else may
    pass: unavailable, deadline exceeded, aborted, resource exhausted, and also permission
    denied or not found, which concern every event alike."""
    from google.api_core import exceptions

    if isinstance(exc, exceptions.InvalidArgument | exceptions.OutOfRange):
        return True
    return isinstance(exc, UnicodeError | ValueError | TypeError)


def _stored(execution: Execution) -> dict[str, Any]:
    return storable(execution).model_dump(exclude_none=True)


def _executions(data: dict[str, Any]) -> dict[str, Execution]:
    stored = data.get("executions") or {}
    return {target: Execution.model_validate(value) for target, value in stored.items()}
