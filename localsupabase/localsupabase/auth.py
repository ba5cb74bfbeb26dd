"""Keys of the stand-in: JWTs signed with the stack secret, carrying the `role` claim of Supabase keys."""

from __future__ import annotations

import time
from typing import Any

import jwt

ROLES = ("anon", "authenticated", "service_role")


class AuthError(Exception):
    """A key or token that the stand-in refuses; the message is safe to show to the client."""


def sign(secret: str, claims: dict[str, Any]) -> str:
    """Sign ``claims`` with HS256, as Supabase signs its keys and access tokens."""
    return jwt.encode(claims, secret, algorithm="HS256")


def make_key(secret: str, role: str, *, lifetime: float = 10 * 365 * 86400) -> str:
    """Return an API key (``anon`` or ``service_role``) as a long-lived JWT."""
    now = int(time.time())
    return sign(secret, {"iss": "supabase-local", "role": role, "iat": now, "exp": now + int(lifetime)})


def make_user_token(secret: str, user_id: str, *, lifetime: float = 3600, email: str | None = None) -> str:
    """Return an access token of an authenticated user, as Supabase Auth issues it."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + int(lifetime),
    }
    if email is not None:
        claims["email"] = email
    return sign(secret, claims)


def verify(secret: str, token: str | None) -> dict[str, Any]:
    """Check a key or token and return its claims.

    Raises:
        AuthError: the token is missing, badly signed, expired, or has no known ``role``.
    """
    if not token:
        raise AuthError("API key missing")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"verify_aud": False, "require": ["exp", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("Token has expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"Fields `role` and `exp` are required in JWT ({exc.claim} missing)") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("The token is not a valid JWT") from exc
    if claims.get("role") not in ROLES:
        raise AuthError(f"Unknown role {claims.get('role')!r}")
    return claims
