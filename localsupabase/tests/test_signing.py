"""Signed-URL tokens of the stand-in's Storage, with numbers for time."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from localsupabase import auth, signing

SECRET = "a-secret-of-the-stack-for-the-tests"
NOW = 1_800_000_000.0


def _token(signed_url: str) -> str:
    return signed_url.partition("?token=")[2]


@pytest.mark.parametrize(("value", "seconds"), [(60, 60), ("60", 60), (" 5 ", 5), (1, 1)])
def test_expires_in_takes_numbers_and_digit_strings(value: Any, seconds: int) -> None:
    """supabase-js sends a number, storage3 a string of digits; both mean seconds."""
    assert signing.parse_expires_in(value) == seconds


@pytest.mark.parametrize("value", [0, -1, "0", "1.5", "", None, True, 1.5, "60s", [60]])
def test_expires_in_refuses_anything_else(value: Any) -> None:
    """Zero, negatives, fractions, booleans and missing values are refused, naming the field."""
    with pytest.raises(signing.SignatureError) as refused:
        signing.parse_expires_in(value)
    assert (refused.value.error, "expiresIn" in refused.value.message) == ("InvalidRequest", True)


def test_signed_url_shape_and_claims() -> None:
    """The URL is /object/sign/{bucket}/{name}?token=, unencoded; the token carries url, iat and exp."""
    url = signing.sign(SECRET, "clips", "projects/p/take 1.mp4", 60, now=NOW)
    claims = jwt.decode(
        _token(url), SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )

    assert url.startswith("/object/sign/clips/projects/p/take 1.mp4?token=")
    assert claims == {"url": "clips/projects/p/take 1.mp4", "iat": int(NOW), "exp": int(NOW) + 60}


def test_token_is_valid_until_it_expires() -> None:
    """Valid one second before exp; from exp on it is refused as InvalidJWT."""
    token = _token(signing.sign(SECRET, "clips", "a.mp4", 60, now=NOW))

    assert signing.verify(SECRET, token, "clips", "a.mp4", now=NOW + 59) == int(NOW) + 60
    with pytest.raises(signing.SignatureError) as expired:
        signing.verify(SECRET, token, "clips", "a.mp4", now=NOW + 60)
    assert (expired.value.error, expired.value.message) == ("InvalidJWT", "the signed URL has expired")


def test_token_of_another_object_secret_or_kind_is_refused() -> None:
    """Another object's token, another secret's, an API key or a garbled token are all refused."""
    token = _token(signing.sign(SECRET, "clips", "a.mp4", 60, now=NOW))
    forged = _token(signing.sign("another-secret-of-at-least-32-bytes!", "clips", "a.mp4", 60, now=NOW))
    api_key = auth.make_key(SECRET, "service_role")
    cases = {
        "other object": (token, "clips", "b.mp4"),
        "other bucket": (token, "audio", "a.mp4"),
        "other secret": (forged, "clips", "a.mp4"),
        "api key": (api_key, "clips", "a.mp4"),
        "garbled": (token[:-3] + "abc", "clips", "a.mp4"),
        "missing": ("", "clips", "a.mp4"),
    }
    errors = {}
    for name, (candidate, bucket, path) in cases.items():
        with pytest.raises(signing.SignatureError) as refused:
            signing.verify(SECRET, candidate, bucket, path, now=NOW)
        errors[name] = refused.value.error

    assert errors == {
        "other object": "InvalidSignature",
        "other bucket": "InvalidSignature",
        "other secret": "InvalidJWT",
        "api key": "InvalidJWT",
        "garbled": "InvalidJWT",
        "missing": "InvalidRequest",
    }


def test_refusals_never_show_the_secret() -> None:
    """No error message repeats the secret, whatever the token."""
    token = _token(signing.sign(SECRET, "clips", "a.mp4", 60, now=NOW))
    messages = []
    for candidate in (token, token[:-3] + "abc", "not.a.jwt"):
        with pytest.raises(signing.SignatureError) as refused:
            signing.verify(SECRET, candidate, "clips", "b.mp4", now=NOW + 3600)
        messages.append(refused.value.message)
    assert all(SECRET not in message for message in messages)
