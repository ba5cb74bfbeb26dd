"""Editors' access tokens: Supabase JWTs, checked with the project's JWT secret or its JWKS.

Who may open which project is decided by :func:`may_open`, the rule of the seed's RLS policies.

Local mode has no Supabase project to take a secret from, so it signs and checks HS256 tokens with a
secret of its own (:func:`local_secret`), generated once into the state directory; ``syncd token``
prints tokens signed with it, so user-owned projects can be tried locally.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import SecretStr

from syncd.errors import ConfigError, EditRejected
from syncd.jwks import JwksKeys, http_fetch
from syncd.rows import is_uuid
from syncd.statedir import make_secret_once

if TYPE_CHECKING:
    from syncd.config import SyncdSettings


_ASYMMETRIC = ("RS256", "ES256")

CLOCK_SKEW = 30
"""Seconds by which this host's clock may differ from Supabase Auth's when ``iat``, ``nbf`` and
``exp`` are checked: PostgREST allows the same, so a token the Data API takes is not refused here
for a clock a second behind (a fresh token's ``iat`` would be "in the future")."""


class TokenVerifier:
    """Checks an editor's token and returns its user id (the ``sub`` claim).

    Args:
        jwt_secret: the Supabase project's JWT secret, for HS256 tokens; None refuses them.
        jwks_url: the project's JWKS endpoint, for RS256/ES256 tokens; None refuses them.
        audience: the ``aud`` claim a token must carry; None skips that check.
        clock: seconds of a monotonic clock, for how long JWKS keys are kept (:mod:`syncd.jwks`).
    """

    def __init__(
        self,
        *,
        jwt_secret: SecretStr | None,
        jwks_url: str | None,
        audience: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = jwt_secret
        self._jwks = JwksKeys(http_fetch(jwks_url), jwks_url) if jwks_url else None
        self._audience = audience
        self._clock = clock

    async def verify(self, token: str) -> str:
        """Return the user id of a valid token.

        Raises:
            EditRejected: code ``unauthorized``; the message says why, never what the token holds.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise EditRejected("unauthorized", "token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm == "HS256":
            if self._secret is None:
                raise EditRejected("unauthorized", "HS256 tokens need SUPABASE_JWT_SECRET, which is not set")
            key: Any = self._secret.get_secret_value()
        elif algorithm in _ASYMMETRIC:
            if self._jwks is None:
                raise EditRejected("unauthorized", f"{algorithm} tokens need auth.jwks_url, which is not set")
            kid = header.get("kid")
            key = await self._jwks.key(kid if isinstance(kid, str) else None, self._clock())
        else:
            raise EditRejected("unauthorized", f"token algorithm {algorithm!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise EditRejected("unauthorized", "token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise EditRejected("unauthorized", f"token refused: {_reason(exc)}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise EditRejected("unauthorized", "token has no user (sub)")
        # Supabase Auth's user ids are UUIDs and so is every user_id column: a token with any other
        # sub could never own a row, and Postgres would refuse to compare it.
        if not is_uuid(sub):
            raise EditRejected("unauthorized", "token's user (sub) is not a UUID")
        return sub.lower()


def _reason(exc: jwt.InvalidTokenError) -> str:
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    if isinstance(exc, jwt.ImmatureSignatureError):
        claim = "iat" if str(exc).endswith("(iat)") else "nbf"
        return f"its {claim} is more than {CLOCK_SKEW} s ahead of this host's clock"
    return "malformed token"


def may_open(project_user_id: str | None, user_id: str | None, *, allow_anonymous: bool) -> bool:
    """Whether a user (None: anonymous) may open a project owned by ``project_user_id``.

    The seed's rule: a user opens their own projects; projects owned by nobody are open to
    anonymous editors when anonymous access is on, and to nobody else.
    """
    if project_user_id is None:
        return user_id is None and allow_anonymous
    return user_id is not None and user_id.lower() == project_user_id.lower()


LOCAL_SECRET_FILE = "jwt-secret"  # noqa: S105 (a file name, not a secret)
"""The file in the state directory that holds local mode's JWT secret."""


def local_secret(state_dir: Path) -> SecretStr:
    """Local mode's JWT secret: read from the state directory, or generated there once (mode 0600).

    Raises:
        ConfigError: the file cannot be read or written, or it is empty.
    """
    path = state_dir / LOCAL_SECRET_FILE
    try:
        make_secret_once(path, lambda: secrets.token_urlsafe(48))
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read or create local mode's JWT secret ({exc})") from exc
    if not value:
        raise ConfigError(f"{path}: the JWT secret file is empty; remove it to have a new one made")
    return SecretStr(value)


def editor_jwt_secret(settings: SyncdSettings) -> SecretStr | None:
    """The secret that editors' HS256 tokens are checked with.

    ``supabase.jwt_secret`` when set; else in local mode the state directory's secret
    (:func:`local_secret`); else None (Supabase mode then needs JWKS for tokens).
    """
    if settings.supabase.jwt_secret is not None:
        return settings.supabase.jwt_secret
    if settings.mode != "local":
        return None
    return local_secret(settings.daemon.state_dir)


JWKS_PATH = "/auth/v1/.well-known/jwks.json"
"""Where a Supabase project publishes its token signing keys, under its URL."""


def editor_jwks_url(settings: SyncdSettings) -> str | None:
    """The JWKS endpoint that editors' RS256/ES256 tokens are checked against.

    ``auth.jwks_url`` when set; else in Supabase mode the project's own endpoint: projects made since
    Supabase introduced signing keys issue ES256 tokens, which would otherwise all be refused.
    """
    if settings.auth.jwks_url is not None:
        return str(settings.auth.jwks_url)
    if settings.supabase.url is None:
        return None
    return str(settings.supabase.url).rstrip("/") + JWKS_PATH
