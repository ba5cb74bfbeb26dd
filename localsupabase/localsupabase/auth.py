"""Keys of the stand-in: JWTs signed with the stack secret, carrying the `role` claim of Supabase keys.

A project on Supabase's signing keys also signs its users' access tokens with an asymmetric key (ES256
by default), names it in the token's ``kid`` header and publishes its public half at
``/auth/v1/.well-known/jwks.json``. :class:`SigningKey` is that key; the stand-in's own REST, Storage
and Realtime still take HS256 tokens only (services that check tokens themselves, such as syncd's
editor gateway, are what ES256 tokens are for here).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

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


class SigningKey:
    """An ES256 key pair with its key id, as a project's current signing key."""

    def __init__(self) -> None:
        self.kid = str(uuid.uuid4())
        self._private = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        """The JWKS document Supabase Auth serves: the public key, its id, algorithm and use."""
        public: dict[str, Any] = ECAlgorithm.to_jwk(self._private.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}]}

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` with ES256, the key id in the header."""
        return jwt.encode(claims, self._private, algorithm="ES256", headers={"kid": self.kid})


def make_user_token(
    secret: str,
    user_id: str,
    *,
    lifetime: float = 3600,
    email: str | None = None,
    signing_key: SigningKey | None = None,
) -> str:
    """Return an access token of an authenticated user, as Supabase Auth issues it: signed with
    ``signing_key`` (ES256) when given, else with the JWT secret (HS256)."""
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
    return signing_key.sign(claims) if signing_key is not None else sign(secret, claims)


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
