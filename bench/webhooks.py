"""Signed EAS deliveries, each a distinct event (its own build `id`), routed by build profile."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from itertools import count

from tests.payloads import payload

SIGNING_SECRET = "bench-eas-signing-secret-5d1c"
REVYL_TOKEN = "rev_bench_token_0b8e"
SAMPLE = json.loads(payload("eas-build-finished-ios.json"))


def test_ids(n: int) -> list[str]:
    """`n` stable, distinct Revyl test ids."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-test-{i}")) for i in range(n)]


def profile(n: int) -> str:
    """The EAS build profile whose route starts `n` tests."""
    return f"fan-{n}"


class Deliveries:
    """Makes signed, distinct EAS "build finished" deliveries for one run."""

    def __init__(self, secret: str = SIGNING_SECRET, prefix: str | None = None) -> None:
        self.secret = secret.encode()
        self.prefix = prefix or uuid.uuid4().hex[:8]
        self._serial = count()

    def next(self, tests: int = 1) -> tuple[bytes, dict[str, str]]:
        data = dict(SAMPLE)
        data["id"] = f"{self.prefix}-{next(self._serial):08d}"
        data["metadata"] = {**SAMPLE["metadata"], "buildProfile": profile(tests)}
        body = json.dumps(data, separators=(",", ":")).encode()
        signature = "sha1=" + hmac.new(self.secret, body, hashlib.sha1).hexdigest()
        return body, {"Content-Type": "application/json", "expo-signature": signature}

    def batch(self, n: int, tests: int = 1) -> list[tuple[bytes, dict[str, str]]]:
        return [self.next(tests) for _ in range(n)]
