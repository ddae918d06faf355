"""A fake Google OIDC token issuer on loopback: signs ID tokens and serves their certificates.

Google signs the ID tokens it attaches to Cloud Tasks (and other push) requests with RS256
and publishes the certificates at https://www.googleapis.com/oauth2/v1/certs as
`{kid: "<PEM certificate>"}`. This fake does the same with a throwaway key:

- GET /oauth2/v1/certs -> `{kid: "<PEM certificate>"}` (`certs_url`), the format
  `google.oauth2.id_token.verify_token(token, request, audience=..., certs_url=...)` reads.

API:

- `issuer = OidcIssuer().start()`; `issuer.certs_url`; `issuer.kid`.
- `issuer.mint(audience, email, *, issuer="https://accounts.google.com", email_verified=True,
  lifetime=3600, signer=None, **claims)` -> an RS256 JWT with iss, aud, azp, email,
  email_verified, iat, exp, sub (and any extra `claims`, which override).
- Forged tokens: `issuer.mint(..., signer=SigningKey.generate())` signs with a key the issuer
  does not serve (another kid); `signer=issuer.impostor()` uses a new key under the trusted kid.
- `lifetime` may be negative (an expired token); `fail("/certs", Reply(503))` breaks the
  certificate endpoint (FakeApi faults); `calls_to("/certs")` counts certificate fetches.
"""

from __future__ import annotations

import datetime
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply

GOOGLE_ISSUER = "https://accounts.google.com"
CERTS_PATH = "/oauth2/v1/certs"


@dataclass(frozen=True)
class SigningKey:
    """An RSA key, its self-signed certificate (PEM) and the kid tokens name it by."""

    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-oidc.sandbox")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        return cls(kid or hashlib.sha1(pem.encode()).hexdigest(), key, pem)  # noqa: S324


class OidcIssuer(FakeApi):
    name = "fake-oidc"

    def __init__(self, key: SigningKey | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key or SigningKey.generate()

    @property
    def kid(self) -> str:
        return self.key.kid

    @property
    def certs_url(self) -> str:
        return self.url + CERTS_PATH

    def impostor(self) -> SigningKey:
        """A new key that claims the trusted kid: what a forger would sign with."""
        return SigningKey.generate(kid=self.kid)

    def mint(
        self,
        audience: str,
        email: str,
        *,
        issuer: str = GOOGLE_ISSUER,
        email_verified: bool = True,
        lifetime: int = 3600,
        signer: SigningKey | None = None,
        **claims: Any,
    ) -> str:
        key = signer or self.key
        now = int(time.time())
        payload = {
            "iss": issuer,
            "aud": audience,
            "azp": _subject(email),
            "email": email,
            "email_verified": email_verified,
            "iat": now,
            "exp": now + lifetime,
            "sub": _subject(email),
            **claims,
        }
        return jwt.encode(payload, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        if call.method == "GET" and call.path == CERTS_PATH:
            return json_reply(200, {self.kid: self.key.certificate_pem})
        return json_reply(404, {"error": "not_found"})


def _subject(email: str) -> str:
    """A stable numeric subject per account, the way Google's look."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, email).int)[:21]
