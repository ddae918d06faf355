"""Who may drive the task endpoint: Cloud Tasks, with a Google-signed OIDC token.

The function is deployed `--allow-unauthenticated` (build systems cannot mint Google tokens),
so Cloud Run does not check a task's token: the relay does. A token is accepted only if its
signature verifies against Google's certificates (RS256), it has not expired, its audience is
`cloud_tasks.url`, its issuer is Google (`https://accounts.google.com`) and its `email` is
`cloud_tasks.service_account`, verified. `google.auth.jwt.decode` checks the signature, the
times and the audience; the claims are checked here.

The certificates are fetched on first use and kept for an hour (Google rotates them over
days); a token signed with a key id the cache lacks refetches them, at most once a minute, so
forged tokens cannot make the relay hammer the certificate endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from relay.errors import Unauthorized, Unavailable

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
CERTS_URL_VARIABLE = "RELAY_OIDC_CERTS_URL"
ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
CERTS_TTL = 3600.0
REFETCH_AT_MOST_EVERY = 60.0
FETCH_TIMEOUT = 5.0


def check_claims(claims: Mapping[str, Any], *, email: str) -> None:
    """The claims a verified token must carry (pure). Raises Unauthorized."""
    if claims.get("iss") not in ISSUERS:
        raise Unauthorized("the task token was not issued by Google")
    if claims.get("email") != email or claims.get("email_verified") is not True:
        raise Unauthorized("the task token is not for the configured service account")


def bearer(authorization: str | None) -> str:
    if not authorization or not authorization[:7].lower() == "bearer ":
        raise Unauthorized("a task request needs Authorization: Bearer <OIDC token>")
    return authorization[7:].strip()


class OidcVerifier:
    def __init__(
        self,
        *,
        audience: str,
        email: str,
        certs_url: str = GOOGLE_CERTS_URL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audience = audience
        self.email = email
        self.certs_url = certs_url
        self.clock = clock
        self._certs: dict[str, str] = {}
        self._fetched_at = -CERTS_TTL
        self._lock = threading.Lock()

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The token's claims, or Unauthorized (never saying more than which check failed)."""
        from google.auth import jwt

        token = bearer(authorization)
        try:
            kid = jwt.decode_header(token).get("kid")
        except (ValueError, TypeError):
            raise Unauthorized("the task token is not a JWT") from None
        certs = self.certs(refresh_for=kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token, certs=certs, audience=self.audience, clock_skew_in_seconds=10
            )
        except (ValueError, TypeError, KeyError):
            raise Unauthorized("the task token did not verify") from None
        check_claims(claims, email=self.email)
        return dict(claims)

    def certs(self, refresh_for: str | None = None) -> dict[str, str]:
        """Google's certificates by key id: cached, refetched when stale or for a new kid."""
        with self._lock:
            age = self.clock() - self._fetched_at
            missing = refresh_for is not None and refresh_for not in self._certs
            if age >= CERTS_TTL or (missing and age >= REFETCH_AT_MOST_EVERY):
                self._certs = self._fetch()
                self._fetched_at = self.clock()
            return self._certs

    def _fetch(self) -> dict[str, str]:
        import requests

        try:
            answer = requests.get(self.certs_url, timeout=FETCH_TIMEOUT)
            answer.raise_for_status()
            certs = answer.json()
        except (requests.RequestException, ValueError):
            if self._certs:
                return self._certs  # keep verifying with what we had
            raise Unavailable("the certificates to verify task tokens could not be read") from None
        if not isinstance(certs, dict):
            raise Unauthorized("the certificates to verify task tokens are malformed")
        return {str(k): str(v) for k, v in certs.items()}
