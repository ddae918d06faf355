"""Signature checks against the published vectors and the shared samples."""

import hashlib

import pytest

from relay.errors import Unauthorized
from relay.signatures import (
    hmac_hex,
    standard_webhook_signature,
    verify_hex_hmac,
    verify_standard_webhook,
)
from tests.payloads import (
    EAS_IOS_SIGNATURE,
    EAS_SECRET,
    GENERIC_HEADERS,
    GENERIC_SECRET,
    GENERIC_TIMESTAMP,
    payload,
)


def test_published_vectors():
    assert (
        hmac_hex("This is my secret", b"Hello, World!", hashlib.sha256)
        == "7f062172b01cb00b53ca068614674a3d982a34062a0f5d37687d5e3377e54657"
    )
    assert (
        standard_webhook_signature(
            GENERIC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}'
        )
        == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.parametrize(
    "header", [EAS_IOS_SIGNATURE, EAS_IOS_SIGNATURE[5:], EAS_IOS_SIGNATURE.upper()]
)
def test_hex_hmac_accepts_prefix_or_bare_hex(header):
    body = payload("eas-build-finished-ios.json")
    verify_hex_hmac(
        header, secret=EAS_SECRET, message=body, digest=hashlib.sha1, prefixes=("sha1=",)
    )


@pytest.mark.parametrize(
    "header",
    [None, "", "sha1=", "sha1=00", "sha1=ünïcödé", "\x00\xff", EAS_IOS_SIGNATURE[:-1] + "1"],
)
def test_hex_hmac_refuses_bad_headers(header):
    body = payload("eas-build-finished-ios.json")
    with pytest.raises(Unauthorized) as caught:
        verify_hex_hmac(
            header, secret=EAS_SECRET, message=body, digest=hashlib.sha1, prefixes=("sha1=",)
        )
    assert "9deefcf95c" not in caught.value.message


def test_hex_hmac_refuses_a_changed_body():
    body = payload("eas-build-finished-ios.json") + b" "
    with pytest.raises(Unauthorized):
        verify_hex_hmac(EAS_IOS_SIGNATURE, secret=EAS_SECRET, message=body, digest=hashlib.sha1)


def test_standard_webhook_sample_verifies_and_returns_its_id():
    body = payload("standard-webhooks-build-finished.json")
    msg_id = verify_standard_webhook(
        GENERIC_HEADERS, body, secret=GENERIC_SECRET, now=GENERIC_TIMESTAMP + 60
    )
    assert msg_id == GENERIC_HEADERS["webhook-id"]


def test_standard_webhook_accepts_any_of_several_signatures():
    body = payload("standard-webhooks-build-finished.json")
    headers = {
        **GENERIC_HEADERS,
        "webhook-signature": "v1,bm9wZQ== " + GENERIC_HEADERS["webhook-signature"],
    }
    verify_standard_webhook(headers, body, secret=GENERIC_SECRET, now=GENERIC_TIMESTAMP)


@pytest.mark.parametrize(
    ("change", "now_offset"),
    [
        ({}, 301),
        ({}, -301),
        ({"webhook-timestamp": "soon"}, 0),
        ({"webhook-signature": "v2,BpG57EIIC9YVojvogE5qfuhlm+HDyvXwjK1lNPAR6+I="}, 0),
        ({"webhook-id": "msg_other"}, 0),
        ({"webhook-signature": ""}, 0),
    ],
)
def test_standard_webhook_refusals(change, now_offset):
    body = payload("standard-webhooks-build-finished.json")
    with pytest.raises(Unauthorized):
        verify_standard_webhook(
            {**GENERIC_HEADERS, **change},
            body,
            secret=GENERIC_SECRET,
            now=GENERIC_TIMESTAMP + now_offset,
        )


def test_sign_hex_hmac_is_the_inverse_of_verify_hex_hmac():
    from relay.signatures import sign_hex_hmac

    header = sign_hex_hmac("s3cret-value", b"body", hashlib.sha256, "sha256=")
    assert header.startswith("sha256=")
    verify_hex_hmac(
        header, secret="s3cret-value", message=b"body", digest=hashlib.sha256, prefixes=("sha256=",)
    )
    with pytest.raises(Unauthorized, match="missing X-Sig header: set a secret"):
        verify_hex_hmac(
            None,
            secret="s",
            message=b"",
            digest=hashlib.sha256,
            missing="missing X-Sig header: set a secret",
        )


def test_sign_standard_webhook_is_the_inverse_of_verify():
    from relay.signatures import sign_standard_webhook

    headers = sign_standard_webhook(b"{}", GENERIC_SECRET, 1_700_000_000, "msg_1")
    assert verify_standard_webhook(headers, b"{}", secret=GENERIC_SECRET, now=1_700_000_100) == (
        "msg_1"
    )


@pytest.mark.parametrize(
    ("sent_at", "message"),
    [
        ("1699999000", "X-Time is outside the 5 minute tolerance"),
        ("soon", "X-Time is not a Unix time"),
        ("9" * 5000, "X-Time is not a Unix time"),
    ],
)
def test_check_timestamp_refuses_old_and_malformed_times(sent_at, message):
    from relay.signatures import check_timestamp

    check_timestamp("1700000300", 1_700_000_000, header="X-Time")
    with pytest.raises(Unauthorized, match=message):
        check_timestamp(sent_at, 1_700_000_000, header="X-Time")


def test_verify_token_takes_bearer_or_bare_in_constant_time():
    from relay.signatures import verify_token

    for value in ("Bearer tok-123456", "tok-123456", " bearer  tok-123456 "):
        verify_token(value, secret="tok-123456", header="Authorization")
    with pytest.raises(Unauthorized, match="missing Authorization header"):
        verify_token(None, secret="tok-123456", header="Authorization")
    with pytest.raises(Unauthorized, match="signature verification failed"):
        verify_token("Bearer other", secret="tok-123456", header="Authorization")
