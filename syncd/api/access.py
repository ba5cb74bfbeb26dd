"""Who calls the HTTP API: a service (the service key), an editor (a Supabase user token) or nobody.

A service is whoever presents the service key as ``Authorization: Bearer <key>``: the key that
``syncd service-key`` prints in local mode, the project's ``service_role`` key in Supabase mode. Any
other bearer token must be an editor's Supabase access token (checked as for ``hello``). No header at
all is the anonymous studio, allowed only where ``auth.allow_anonymous`` is on.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from syncd.auth import TokenVerifier, may_open
from syncd.errors import EditRejected


@dataclass(frozen=True, slots=True)
class Caller:
    """One request's caller.

    Attributes:
        service: it presented the service key.
        user_id: the editor's user id (None: anonymous, or a service).
        anonymous: it presented no credentials at all.
    """

    service: bool
    user_id: str | None
    anonymous: bool

    def require_service(self) -> None:
        """Refuse anyone but a service.

        Raises:
            EditRejected: ``unauthorized`` without credentials, ``forbidden`` with an editor's token.
        """
        if self.service:
            return
        if self.anonymous:
            raise EditRejected("unauthorized", "this call needs the service key (Authorization: Bearer …)")
        raise EditRejected("forbidden", "this call needs the service key; an editor's token is not enough")


SERVICE = Caller(service=True, user_id=None, anonymous=False)


class Gate:
    """Tells callers apart and decides what editors may touch.

    Args:
        service_key: the key services present.
        verifier: checks editors' tokens.
        allow_anonymous: whether callers without a token are the anonymous studio.
    """

    def __init__(self, service_key: str, verifier: TokenVerifier, *, allow_anonymous: bool) -> None:
        self._key = service_key.encode()
        self._verifier = verifier
        self.allow_anonymous = allow_anonymous

    async def caller(self, authorization: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header (or none).

        Raises:
            EditRejected: ``unauthorized`` for a malformed header, a bad token, or no token where
                anonymous access is off.
        """
        if authorization is None or not authorization.strip():
            if not self.allow_anonymous:
                raise EditRejected("unauthorized", "this call needs a token (Authorization: Bearer …)")
            return Caller(service=False, user_id=None, anonymous=True)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise EditRejected("unauthorized", "the Authorization header must be 'Bearer <token>'")
        if hmac.compare_digest(token.encode(), self._key):
            return SERVICE
        user_id = await self._verifier.verify(token)
        return Caller(service=False, user_id=user_id.lower(), anonymous=False)

    def check_owner(self, caller: Caller, owner: str | None, what: str) -> None:
        """Refuse an editor a row that is not theirs (the rule of the seed's row-level security).

        Raises:
            EditRejected: ``forbidden`` (or ``unauthorized`` for an anonymous caller and a user's row).
        """
        if caller.service or may_open(owner, caller.user_id, allow_anonymous=self.allow_anonymous):
            return
        if caller.user_id is None:
            raise EditRejected("unauthorized", f"{what} belongs to a user: send their token")
        raise EditRejected("forbidden", f"{what} belongs to another user")
