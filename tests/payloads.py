"""The sample deliveries (tests/data/payloads, the repository's own copy) and their known-good
signatures."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAYLOADS = REPO / "tests" / "data" / "payloads"

EAS_SECRET = "test-eas-secret-0123456789"
GENERIC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

EAS_IOS_SIGNATURE = "sha1=9deefcf95c9ff9730651ba5951a8f2c8cf570880"
EAS_ANDROID_SIGNATURE = "sha1=5859c6fe94c6398c3cc7a4aa345f8bec2f57e48b"
EAS_ERRORED_SIGNATURE = "sha1=ab77140feeaedd5e78ae7ff99ad40b6e5c3926f7"
EAS_SUBMIT_SIGNATURE = "sha1=f837e61e488724121ebd2b8afd3c5ea5b329534f"
GENERIC_HEADERS = {
    "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    "webhook-timestamp": "1764339861",
    "webhook-signature": "v1,BpG57EIIC9YVojvogE5qfuhlm+HDyvXwjK1lNPAR6+I=",
}
GENERIC_TIMESTAMP = 1764339861


def payload(name: str) -> bytes:
    """A sample's exact bytes (signatures are over these bytes: never reformat them)."""
    return (PAYLOADS / name).read_bytes()
