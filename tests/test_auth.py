"""Editors' tokens and the clocks of two machines: Supabase Auth's, which signs them, and syncd's host's."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from syncd.auth import CLOCK_SKEW, TokenVerifier
from syncd.errors import EditRejected

SECRET = "a-test-secret-of-at-least-32-bytes-long"
USER = "a0000000-0000-4000-8000-00000000000a"


def token(**times: float) -> str:
    """An HS256 access token whose time claims are ``now + offset`` for each offset given."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": USER, "aud": "authenticated", "iat": now, "exp": now + 3600}
    claims.update({claim: now + int(offset) for claim, offset in times.items()})
    return jwt.encode(claims, SECRET, algorithm="HS256")


def verifier() -> TokenVerifier:
    return TokenVerifier(jwt_secret=SecretStr(SECRET), jwks_url=None, audience="authenticated")


@pytest.mark.parametrize(
    "times",
    [
        pytest.param({"iat": 5}, id="issued by a clock 5 s ahead"),
        pytest.param({"nbf": 5}, id="valid from 5 s ahead"),
        pytest.param({"exp": -5}, id="expired 5 s ago by this host's clock"),
    ],
)
async def test_a_token_from_a_clock_a_few_seconds_off_is_taken(times: dict[str, float]) -> None:
    """A fresh token from an Auth server whose clock is a little ahead is not refused as from the future."""
    assert await verifier().verify(token(**times)) == USER


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_a_token_from_further_ahead_than_the_skew_is_refused_and_says_why(claim: str) -> None:
    with pytest.raises(EditRejected) as refused:
        await verifier().verify(token(**{claim: CLOCK_SKEW + 60}))
    assert refused.value.code == "unauthorized"
    assert f"its {claim} is more than {CLOCK_SKEW} s ahead of this host's clock" in refused.value.message


async def test_a_token_expired_longer_ago_than_the_skew_is_refused() -> None:
    with pytest.raises(EditRejected) as refused:
        await verifier().verify(token(exp=-(CLOCK_SKEW + 60)))
    assert refused.value.message == "token has expired"
