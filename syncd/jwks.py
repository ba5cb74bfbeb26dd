"""The signing keys of a JWKS endpoint (Supabase Auth's ``/auth/v1/.well-known/jwks.json``), kept in memory.

Supabase projects with signing keys issue ES256 (or RS256) access tokens naming their key in the
header's ``kid``. The keys are fetched when a token needs one, and kept :data:`KEYS_LIFESPAN` seconds.
Two rules keep the endpoint and the editors safe:

* A token naming a key that a fetch of the last :data:`REFETCH_AFTER` seconds did not hold is refused
  without another fetch: tokens with made-up key ids cost the endpoint nothing, while a key Supabase
  has just rotated in is found within that time.
* A fetch that fails (the endpoint away, slow or answering garbage) makes such tokens ``unavailable``,
  not ``unauthorized``: editors are told to retry (close code 1011), not to sign in again. The next
  fetch is tried :data:`RETRY_AFTER` seconds later at the earliest, whatever the number of editors.

Concurrent callers share one fetch. Time is a parameter (``now``, in seconds of a monotonic clock).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx
import jwt

from syncd.errors import EditRejected, SyncdError

log = logging.getLogger(__name__)

KEYS_LIFESPAN: Final = 600.0
"""Seconds the fetched keys are used before they are fetched again."""

REFETCH_AFTER: Final = 30.0
"""Seconds after a fetch during which a key id it did not hold is refused without fetching again."""

RETRY_AFTER: Final = 5.0
"""Seconds after a failed fetch before the next one is tried."""

FETCH_TIMEOUT: Final = 5.0
"""Seconds a fetch may take (connecting, sending, reading)."""

Fetch = Callable[[], Awaitable[object]]
"""Reads the endpoint's JSON document; raises :class:`FetchError` when it cannot."""


class FetchError(SyncdError):
    """The JWKS document could not be read; the message says why, for the log."""


class JwksKeys:
    """The keys of one JWKS endpoint.

    Args:
        fetch: reads the document (:func:`http_fetch` in the daemon).
        describe: how the endpoint is named in log lines (its URL).
    """

    def __init__(self, fetch: Fetch, describe: str) -> None:
        self._fetch = fetch
        self._describe = describe
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = -math.inf
        self._failed_at = -math.inf
        self._fetching: asyncio.Future[bool] | None = None

    async def key(self, kid: str | None, now: float) -> Any:
        """The verifying key named ``kid`` (None: the endpoint's only key).

        Raises:
            EditRejected: ``unauthorized`` when the endpoint does not hold the key; ``unavailable`` when
                the keys cannot be fetched.
        """
        if now - self._fetched_at < KEYS_LIFESPAN and kid in self._keys:
            return self._keys[kid]
        if now - self._fetched_at >= REFETCH_AFTER:
            if now - self._failed_at < RETRY_AFTER:
                raise _unavailable()
            await self._refresh(now)
        if kid not in self._keys:
            raise EditRejected("unauthorized", "token signing key not found in JWKS")
        return self._keys[kid]

    async def _refresh(self, now: float) -> None:
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._load(now))
        # Shielded: one caller giving up (its editor left) must not cancel the others' fetch.
        if not await asyncio.shield(self._fetching):
            raise _unavailable()

    async def _load(self, now: float) -> bool:
        try:
            keys = parse(await self._fetch())
        except FetchError as exc:
            log.warning("cannot fetch the token signing keys from %s: %s", self._describe, exc)
            self._failed_at = now
            return False
        self._keys, self._fetched_at = keys, now
        return True


def parse(document: object) -> dict[str | None, Any]:
    """The verifying keys of a JWKS document, by key id; the only key is under None as well.

    Keys of other uses (``use`` other than ``sig``) and of algorithms PyJWT cannot load are left out;
    a set with no key at all (a project still on its JWT secret) is an empty dict.

    Raises:
        FetchError: the document is not a JWKS.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise FetchError("the answer is not a JWKS (an object with a list of keys)")
    keys: dict[str | None, Any] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry.get("kid")] = jwt.PyJWK.from_dict(dict(entry)).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    if len(keys) == 1:
        keys[None] = next(iter(keys.values()))
    return keys


def _unavailable() -> EditRejected:
    return EditRejected("unavailable", "the token signing keys cannot be fetched now; try again shortly")


def http_fetch(url: str) -> Fetch:
    """A :data:`Fetch` that GETs ``url`` (the endpoint is public: no key is sent)."""

    async def fetch() -> object:
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}") from None
        if answer.status_code != 200:
            raise FetchError(f"answered {answer.status_code}")
        try:
            return answer.json()
        except ValueError:
            raise FetchError("the answer is not JSON") from None

    return fetch
