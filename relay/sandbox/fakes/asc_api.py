"""A fake App Store Connect API on loopback that checks its tokens the way Apple describes.

Every request needs `Authorization: Bearer <JWT>`: ES256, header `kid` = the key id, claims
`iss` = the issuer id, `aud` = appstoreconnect-v1, `iat` and an `exp` at most 20 minutes after
`iat` and still in the future, signed by the private key whose public half the fake was given.
Anything else is Apple's 401 NOT_AUTHORIZED. `tokens` lists the distinct tokens seen.

- GET /v1/buildUploads/{id}[?include=build] -> BuildUpload (cfBundleShortVersionString,
  cfBundleVersion, platform, state); with include=build the build linkage and the build
- GET /v1/builds/{id}[?include=preReleaseVersion,app] -> Build (version = build number), with
  the pre-release version (marketing version, platform) and the app (bundleId) when included

Seed with `add_upload(...)`. `link_build=False` leaves the upload without a build linkage;
`upload_known=False` makes the upload 404 while a build of the same id exists (the other
reading of Apple's ids). Faults: `fail(path_part, reply, times=None)`.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply

ISSUER_ID = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
AUDIENCE = "appstoreconnect-v1"
_RESOURCE = re.compile(r"/v1/(?P<kind>buildUploads|builds)/(?P<id>[^/]+)")


def new_key() -> tuple[str, str]:
    """A throwaway EC P-256 key: (.p8 private key PEM, public key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def apple_error(status: int, code: str, title: str, detail: str) -> Reply:
    error = {"id": "fake", "status": str(status), "code": code, "title": title, "detail": detail}
    return json_reply(status, {"errors": [error]})


class FakeAppStoreConnect(FakeApi):
    name = "fake-asc"

    def __init__(
        self, public_key_pem: str, issuer_id: str = ISSUER_ID, key_id: str = KEY_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.public_key_pem = public_key_pem
        self.issuer_id = issuer_id
        self.key_id = key_id
        self.tokens: list[str] = []
        self._uploads: dict[str, dict[str, Any]] = {}
        self._builds: dict[str, dict[str, Any]] = {}
        self._state = threading.Lock()

    # --- seeding and scripting ---------------------------------------------------------

    def add_upload(
        self,
        upload_id: str,
        *,
        version: str,
        build_number: str,
        bundle_id: str,
        platform: str = "IOS",
        build_id: str | None = None,
        link_build: bool = True,
        upload_known: bool = True,
    ) -> str:
        """Seed an upload and the build it produced; returns the build id."""
        build_id = build_id or (upload_id if not upload_known else f"build-{upload_id[:8]}")
        with self._state:
            if upload_known:
                self._uploads[upload_id] = {
                    "attributes": {
                        "cfBundleShortVersionString": version,
                        "cfBundleVersion": build_number,
                        "platform": platform,
                        "state": {"state": "COMPLETE", "errors": [], "warnings": []},
                        "uploadedDate": "2025-11-28T14:31:02Z",
                    },
                    "build": build_id if link_build else None,
                }
            self._builds[build_id] = {
                "version": build_number,
                "pre_release": {"version": version, "platform": platform},
                "app": {"bundleId": bundle_id, "name": "Shopper", "sku": "SHOPPER"},
            }
        return build_id

    def reset(self) -> None:
        with self._state:
            super().reset()
            self.tokens.clear()
            self._uploads.clear()
            self._builds.clear()

    # --- handling ----------------------------------------------------------------------

    def handle(self, call: RecordedCall) -> Reply:
        scripted = self.scripted(call)
        if scripted is not None:
            return scripted
        refused = self._authenticate(call.headers.get("authorization", ""))
        if refused is not None:
            return refused
        match = _RESOURCE.fullmatch(call.path)
        if match is None or call.method != "GET":
            return _not_found("The path provided does not match a defined resource type.")
        include = set(filter(None, call.query.get("include", "").split(",")))
        if match["kind"] == "buildUploads":
            return self._upload(match["id"], include)
        return self._build(match["id"], include)

    def _authenticate(self, authorization: str) -> Reply | None:
        scheme, _, token = authorization.partition(" ")
        try:
            if scheme != "Bearer" or not token:
                raise jwt.InvalidTokenError("no bearer token")
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["ES256"],
                audience=AUDIENCE,
                options={"require": ["iss", "iat", "exp", "aud"]},
            )
            if header.get("kid") != self.key_id or claims["iss"] != self.issuer_id:
                raise jwt.InvalidTokenError("wrong kid or iss")
            if claims["exp"] - claims["iat"] > 20 * 60 or claims["iat"] > time.time() + 60:
                raise jwt.InvalidTokenError("lifetime over 20 minutes")
        except jwt.PyJWTError:
            return apple_error(
                401,
                "NOT_AUTHORIZED",
                "Authentication credentials are missing or invalid.",
                "Provide a properly configured and signed bearer token, and make sure that it "
                "has not expired.",
            )
        with self._state:
            if token not in self.tokens:
                self.tokens.append(token)
        return None

    def _upload(self, upload_id: str, include: set[str]) -> Reply:
        with self._state:
            upload = self._uploads.get(upload_id)
        if upload is None:
            return _not_found(f"There is no resource of type 'buildUploads' with id '{upload_id}'")
        data: dict[str, Any] = {
            "type": "buildUploads",
            "id": upload_id,
            "attributes": upload["attributes"],
            "relationships": {"build": {"links": {"self": f"/v1/buildUploads/{upload_id}/build"}}},
            "links": {"self": f"{self.url}/v1/buildUploads/{upload_id}"},
        }
        document: dict[str, Any] = {"data": data, "links": {"self": data["links"]["self"]}}
        if "build" in include:
            build_id = upload["build"]
            linkage = {"type": "builds", "id": build_id} if build_id else None
            data["relationships"]["build"]["data"] = linkage
            if build_id:
                document["included"] = [self._build_resource(build_id)]
        return json_reply(200, document)

    def _build(self, build_id: str, include: set[str]) -> Reply:
        with self._state:
            build = self._builds.get(build_id)
        if build is None:
            return _not_found(f"There is no resource of type 'builds' with id '{build_id}'")
        document: dict[str, Any] = {"data": self._build_resource(build_id, include)}
        included = []
        if "preReleaseVersion" in include:
            included.append(
                {
                    "type": "preReleaseVersions",
                    "id": f"prv-{build_id}",
                    "attributes": build["pre_release"],
                }
            )
        if "app" in include:
            included.append({"type": "apps", "id": "1466720321", "attributes": build["app"]})
        if included:
            document["included"] = included
        return json_reply(200, document)

    def _build_resource(
        self, build_id: str, include: frozenset[str] | set[str] = frozenset()
    ) -> dict[str, Any]:
        build = self._builds.get(build_id, {"version": None})
        relationships: dict[str, Any] = {}
        if "preReleaseVersion" in include:
            relationships["preReleaseVersion"] = {
                "data": {"type": "preReleaseVersions", "id": f"prv-{build_id}"}
            }
        if "app" in include:
            relationships["app"] = {"data": {"type": "apps", "id": "1466720321"}}
        return {
            "type": "builds",
            "id": build_id,
            "attributes": {"version": build["version"], "processingState": "VALID"},
            "relationships": relationships,
        }


def _not_found(detail: str) -> Reply:
    return apple_error(404, "NOT_FOUND", "The specified resource does not exist", detail)
