"""Signed object URLs, as Supabase Storage makes and checks them.

A signed URL is ``/object/sign/{bucket}/{name}?token=…`` (relative to ``/storage/v1``), where the token is
a JWT signed with the project's JWT secret that carries the object's ``url`` (``bucket/name``) and ``exp``.
It has no ``role`` claim, so it is never accepted as an API key, and an API key is never accepted as a
signed-URL token (it has no ``url``). Time is a parameter here, so that expiry is checked with numbers.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

_ALGORITHM = "HS256"


class SignatureError(Exception):
    """A signed-URL request or token that Storage refuses; ``error`` is Storage's error code."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def parse_expires_in(value: Any) -> int:
    """Return the ``expiresIn`` of a sign request as seconds.

    supabase-js sends a number and supabase-py (storage3) a string of digits; Storage coerces both.

    Raises:
        SignatureError: the value is missing, not a whole number, or below 1.
    """
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    if seconds is None or seconds < 1:
        raise SignatureError("InvalidRequest", "body/expiresIn must be a whole number of seconds >= 1")
    return seconds


def object_url(bucket: str, name: str) -> str:
    """Return the ``url`` claim of an object's token: ``bucket/name``, unencoded."""
    return f"{bucket}/{name}"


def sign(secret: str, bucket: str, name: str, expires_in: int, *, now: float | None = None) -> str:
    """Return the signed URL of an object, relative to ``/storage/v1``, valid ``expires_in`` seconds.

    The path stays unencoded, as Storage returns it: supabase-js runs ``encodeURI`` over the whole URL
    and storage3 parses it with yarl, so encoding it here would encode it twice.
    """
    issued = int(time.time() if now is None else now)
    claims = {"url": object_url(bucket, name), "iat": issued, "exp": issued + expires_in}
    token = jwt.encode(claims, secret, algorithm=_ALGORITHM)
    return f"/object/sign/{object_url(bucket, name)}?token={token}"


def verify(secret: str, token: str | None, bucket: str, name: str, *, now: float | None = None) -> int:
    """Check a signed-URL token for object ``bucket/name`` and return its expiry (Unix seconds).

    Raises:
        SignatureError: ``InvalidJWT`` when the token is missing, badly signed, malformed or expired
            (at ``now``); ``InvalidSignature`` when it was made for another object.
    """
    if not token:
        raise SignatureError("InvalidRequest", "querystring must have required property 'token'")
    try:
        # Time is checked below against ``now``, not against the wall clock inside PyJWT.
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            options={"require": ["exp", "url"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        raise SignatureError("InvalidJWT", f"the signed URL's token is not valid ({exc})") from exc
    expires = claims["exp"]
    if not isinstance(expires, int):
        raise SignatureError("InvalidJWT", "the signed URL's token has a malformed exp claim")
    if (time.time() if now is None else now) >= expires:
        raise SignatureError("InvalidJWT", "the signed URL has expired")
    if claims["url"] != object_url(bucket, name):
        raise SignatureError("InvalidSignature", "the signed URL was made for another object")
    return expires
