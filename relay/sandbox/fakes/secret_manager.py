"""A fake Google Secret Manager REST endpoint on loopback.

Works with the REAL client, built exactly as the relay builds it::

    client = secretmanager.SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=fake.url),  # "http://127.0.0.1:PORT"
    )
    client.access_secret_version(name="projects/demo/secrets/NAME/versions/latest")

Findings (google-cloud-secret-manager 2.32.0, google-api-core 2.44.0, requests 2.34):

- An `http://` api_endpoint works as is: the REST transport only prepends its
  `url_scheme` ("https") when the endpoint has no scheme, so no `url_scheme` is needed.
- Request: `GET /v1/projects/demo/secrets/NAME/versions/latest:access?$alt=json;enum-encoding=int`
  (query percent-encoded: `%24alt=json%3Benum-encoding%3Dint`), no body, headers
  `x-goog-request-params: name=projects/demo/secrets/NAME/versions/latest`,
  `x-goog-api-client: ...`, `Content-Type: application/json`; no Authorization header
  with AnonymousCredentials.
- Response it needs: 200 `{"name": "projects/P/secrets/NAME/versions/N",
  "payload": {"data": "<base64>", "dataCrc32c": "<crc32c as a decimal string>"}}`.
  The client does NOT verify `dataCrc32c` (google-crc32c is not even installed);
  the fake sends a correct one anyway (pure-Python CRC-32C) so a relay may check it.
- Errors: Google's JSON error shape maps to google.api_core exceptions
  (404 -> NotFound, 503 -> ServiceUnavailable, 429 -> ResourceExhausted).
- Default retry of access_secret_version: Retry(initial=2.0, multiplier=2.0,
  maximum=60.0, deadline=60.0) on ServiceUnavailable and ResourceExhausted, timeout 60 s.
  Measured against `down = True` (9 runs): 6-8 attempts, then
  `google.api_core.exceptions.RetryError` (not ServiceUnavailable) after 16-60 s
  (jittered backoff; median ~40 s). Tests must pass their own `retry=`/`timeout=`.
  404 is not retried (one request, immediate NotFound).

Run as a process:
    python -m relay.sandbox.fakes.secret_manager --port 0 --set revyl-api-key=rev_test
prints `READY http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import re
from typing import Any

from relay.sandbox.fakes._http import (
    FakeHTTPServer,
    RecordedCall,
    Reply,
    json_reply,
    run_until_signal,
)
from relay.sandbox.net import LOOPBACK

__all__ = ["FakeSecretManager", "RecordedCall", "crc32c"]

_ACCESS = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/secrets/(?P<secret>[^/]+)/versions/(?P<version>[^/:]+):access"
)


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as Secret Manager reports it in `dataCrc32c`."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _google_error(code: int, message: str, status: str) -> Reply:
    return json_reply(code, {"error": {"code": code, "message": message, "status": status}})


class FakeSecretManager(FakeHTTPServer):
    name = "fake-secret-manager"

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(host=host, port=port, latency=latency)
        self.down = False
        """When True, every call gets 503 UNAVAILABLE at once."""
        self._versions: dict[tuple[str, str], list[bytes]] = {}

    def set(self, name: str, value: str | bytes, project: str = "demo") -> int:
        """Add a new version of secret `name` (it becomes `latest`); returns its number."""
        data = value.encode() if isinstance(value, str) else value
        with self._lock:
            versions = self._versions.setdefault((project, name), [])
            versions.append(data)
            return len(versions)

    def delete(self, name: str, project: str = "demo") -> None:
        with self._lock:
            self._versions.pop((project, name), None)

    def access_count(self, name: str | None = None) -> int:
        """Number of access calls received (all, or for the secret short name `name`)."""
        count = 0
        for call in self.calls:
            match = _ACCESS.fullmatch(call.path)
            if match and (name is None or match["secret"] == name):
                count += 1
        return count

    def handle(self, call: RecordedCall) -> Reply:
        if self.down:
            return _google_error(503, "unavailable", "UNAVAILABLE")
        match = _ACCESS.fullmatch(call.path)
        if match is None or call.method != "GET":
            return _google_error(404, "Method not found.", "NOT_FOUND")
        reply = self._access(match["project"], match["secret"], match["version"])
        call.started = reply.status == 200
        return reply

    def _access(self, project: str, secret: str, version: str) -> Reply:
        secret_name = f"projects/{project}/secrets/{secret}"
        with self._lock:
            versions = list(self._versions.get((project, secret), []))
        if not versions:
            return _google_error(
                404,
                f"Secret [{secret_name}] not found or has no versions.",
                "NOT_FOUND",
            )
        number = len(versions) if version == "latest" else _version_number(version)
        if number is None or not 1 <= number <= len(versions):
            return _google_error(
                404,
                f"Secret Version [{secret_name}/versions/{version}] not found.",
                "NOT_FOUND",
            )
        return json_reply(200, _payload(f"{secret_name}/versions/{number}", versions[number - 1]))


def _version_number(version: str) -> int | None:
    return int(version) if version.isdigit() else None


def _payload(name: str, data: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "payload": {
            "data": base64.b64encode(data).decode(),
            "dataCrc32c": str(crc32c(data)),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m relay.sandbox.fakes.secret_manager",
        description="Serve a fake Secret Manager REST API.",
    )
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--project", default="demo")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="seed a secret"
    )
    args = parser.parse_args(argv)
    fake = FakeSecretManager(host=args.host, port=args.port)
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--set expects NAME=VALUE, got {item!r}")
        fake.set(name, value, project=args.project)
    run_until_signal(fake)


if __name__ == "__main__":
    main()
