"""SigV4 verification against botocore's own signer (header and presigned), the AWS test-suite
vectors, and every refusal with AWS's exception name."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lantern.iam import sigv4
from lantern.iam.errors import AwsError

KEY_ID, SECRET = "LKIAABCDEFGHIJKLMNOP", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3"
CREDS = Credentials(KEY_ID, SECRET)


def received(req: AWSRequest, body: bytes | None = None) -> sigv4.HttpRequest:
    """What the server sees of a request botocore sent."""
    url = urlsplit(req.url)
    headers: dict[str, list[str]] = {}
    for name, value in req.headers.items():
        text = value.decode() if isinstance(value, bytes) else value
        headers.setdefault(name.lower(), []).append(text)
    headers.setdefault("host", [url.netloc])
    data = req.data if body is None else body
    raw = data.encode() if isinstance(data, str) else (data or b"")
    return sigv4.HttpRequest(req.method, url.path, url.query, headers, raw)


def signed(
    method: str,
    url: str,
    body: bytes = b"",
    service: str = "iot",
    region: str = "eu-west-1",
    unsigned_payload: bool = False,
) -> AWSRequest:
    req = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    if unsigned_payload:
        req.context["payload_signing_enabled"] = False
    SigV4Auth(CREDS, service, region).add_auth(req)
    return req


def check(req: sigv4.HttpRequest, secret: str = SECRET, now: float | None = None) -> None:
    sig = sigv4.parse(req)
    assert sig.key_id == KEY_ID
    sigv4.verify(req, sig, secret, dt.datetime.now(dt.UTC).timestamp() if now is None else now)


def code_of(req: sigv4.HttpRequest, **kwargs: object) -> str:
    with pytest.raises(AwsError) as caught:
        check(req, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


@pytest.mark.parametrize(
    ("method", "url", "body", "service"),
    [
        ("GET", "http://127.0.0.1:8080/things", b"", "iot"),
        (
            "GET",
            "http://127.0.0.1:8080/things?attributeName=room&attributeValue=a%20b%2Fc&maxResults=5",
            b"",
            "iot",
        ),
        ("POST", "http://localhost:9/things/dev-1", json.dumps({"a": 1}).encode(), "iot"),
        (
            "POST",
            "http://localhost:9/topics/a%2Fb%2F%24c?qos=1&retain=true",
            b"\x00\xff",
            "iotdata",
        ),
        ("GET", "http://localhost:9/things/t/shadow?name=cfg", b"", "iot-data"),
        ("PUT", "https://h.example/jobs/j-1?force=true", b"{}", "iot-jobs-data"),
        ("DELETE", "http://h/policies/p%3Aq", b"", "iot"),
    ],
)
def test_botocore_header_signatures_verify(
    method: str, url: str, body: bytes, service: str
) -> None:
    check(received(signed(method, url, body, service=service, region="ap-south-1")))


def test_unsigned_payload_over_https() -> None:
    req = signed("POST", "https://h.example/topics/x", b"payload", unsigned_payload=True)
    assert req.headers["X-Amz-Content-SHA256"] == sigv4.UNSIGNED_PAYLOAD
    check(received(req))
    check(received(req, body=b"another body"))  # the body is not covered, as AWS allows


def test_presigned_url_verifies_until_it_expires() -> None:
    req = AWSRequest(method="GET", url="http://127.0.0.1:1/things/dev-1?x=y")
    SigV4QueryAuth(CREDS, "iot", "us-east-2", expires=60).add_auth(req)
    assert "X-Amz-Signature=" in req.url and "Authorization" not in req.headers
    now = dt.datetime.now(dt.UTC).timestamp()
    check(received(req), now=now)
    assert code_of(received(req), now=now + 120) == "InvalidSignatureException"


def test_refusals_have_aws_codes() -> None:
    good = signed("POST", "http://h/things/a", b'{"x":1}')
    assert code_of(received(good), secret="wrong") == "InvalidSignatureException"
    assert code_of(received(good, body=b'{"x":2}')) == "InvalidSignatureException"
    now = dt.datetime.now(dt.UTC).timestamp()
    assert code_of(received(good), now=now + 301) == "InvalidSignatureException"
    assert code_of(received(good), now=now - 301) == "InvalidSignatureException"
    check(received(good), now=now + 290)  # within the 5-minute skew
    tampered = received(good)
    tampered = sigv4.HttpRequest(
        tampered.method, "/things/b", tampered.query, tampered.headers, tampered.body
    )
    assert code_of(tampered) == "InvalidSignatureException"
    bare = sigv4.HttpRequest("GET", "/things", "", {"host": ["h"]}, b"")
    assert code_of(bare) == "MissingAuthenticationTokenException"
    partial = sigv4.HttpRequest(
        "GET",
        "/things",
        "",
        {"host": ["h"], "authorization": [f"{sigv4.ALGORITHM} Signature=0"]},
        b"",
    )
    assert code_of(partial) == "IncompleteSignatureException"
    other_service = signed("GET", "http://h/things", service="s3")
    assert code_of(received(other_service)) == "IncompleteSignatureException"


def test_declared_payload_hash_must_match_the_body() -> None:
    req = signed("POST", "http://h/things/a", b"body")
    req.headers["X-Amz-Content-SHA256"] = "0" * 64
    assert code_of(received(req)) == "InvalidSignatureException"


def test_aws_signing_key_example() -> None:
    # AWS documentation: deriving the signing key (secret, 20120215, us-east-1, iam).
    key = sigv4.signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"
    )
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_aws_test_suite_get_vanilla() -> None:
    # aws-sig-v4-test-suite/get-vanilla: GET / with host and x-amz-date signed.
    req = sigv4.HttpRequest(
        "GET",
        "/",
        "",
        {"host": ["example.amazonaws.com"], "x-amz-date": ["20150830T123600Z"]},
        b"",
    )
    sig = sigv4.Signature(
        "AKIDEXAMPLE",
        "20150830",
        "us-east-1",
        "service",
        ("host", "x-amz-date"),
        "",
        "20150830T123600Z",
        presigned=False,
    )
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    got = sigv4.expected_signature(req, sig, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", empty)
    assert got == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"


def test_date_header_instead_of_x_amz_date() -> None:
    req = AWSRequest(
        method="GET", url="http://h/things", headers={"Date": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    SigV4Auth(CREDS, "iot", "eu-west-1").add_auth(req)
    assert "X-Amz-Date" not in req.headers and "Date" in req.headers
    check(received(req))
