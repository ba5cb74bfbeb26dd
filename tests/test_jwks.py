"""The JWKS key cache (syncd/jwks.py), with numbers for time and a document server in place of HTTP.

The HTTP fetch itself is checked against the stand-in's endpoint in tests/supabase_mode/test_tokens.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from syncd.errors import EditRejected
from syncd.jwks import KEYS_LIFESPAN, REFETCH_AFTER, RETRY_AFTER, FetchError, JwksKeys, parse


def jwk(kid: str, **extra: Any) -> dict[str, Any]:
    """A public ES256 key as a JWKS lists it."""
    public: dict[str, Any] = ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    return {**public, "kid": kid, "alg": "ES256", "use": "sig", **extra}


class Endpoint:
    """Serves ``keys`` as a JWKS document, or fails while ``down``; counts the fetches."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.down = False
        self.fetches = 0
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> object:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise FetchError("answered 503")
        return {"keys": self.keys}


async def refused(keys: JwksKeys, kid: str | None, now: float) -> str:
    with pytest.raises(EditRejected) as caught:
        await keys.key(kid, now)
    return caught.value.code


async def test_keys_are_fetched_once_and_again_after_their_lifespan() -> None:
    endpoint = Endpoint(jwk("a"))
    keys = JwksKeys(endpoint.fetch, "test")
    first = await keys.key("a", 100.0)
    assert await keys.key("a", 100.0 + KEYS_LIFESPAN - 1) is first
    assert endpoint.fetches == 1
    await keys.key("a", 100.0 + KEYS_LIFESPAN)
    assert endpoint.fetches == 2


async def test_an_unknown_key_id_costs_one_fetch_per_refetch_interval() -> None:
    """Tokens with made-up key ids do not make the daemon hammer the endpoint; a key rotated in is found."""
    endpoint = Endpoint(jwk("a"))
    keys = JwksKeys(endpoint.fetch, "test")
    await keys.key("a", 0.0)
    for now in (1.0, 2.0, REFETCH_AFTER - 1):
        assert await refused(keys, "made-up", now) == "unauthorized"
    assert endpoint.fetches == 1
    endpoint.keys.append(jwk("b"))
    assert await refused(keys, "b", REFETCH_AFTER - 1) == "unauthorized"
    await keys.key("b", REFETCH_AFTER)
    assert endpoint.fetches == 2
    await keys.key("a", REFETCH_AFTER + 1)
    assert endpoint.fetches == 2


async def test_an_endpoint_that_fails_makes_tokens_unavailable_and_is_tried_again_later() -> None:
    endpoint = Endpoint(jwk("a"))
    endpoint.down = True
    keys = JwksKeys(endpoint.fetch, "test")
    assert await refused(keys, "a", 0.0) == "unavailable"
    assert await refused(keys, "a", RETRY_AFTER - 1) == "unavailable"
    assert endpoint.fetches == 1
    endpoint.down = False
    await keys.key("a", RETRY_AFTER)
    assert endpoint.fetches == 2


async def test_expired_keys_are_not_used_while_the_endpoint_is_down() -> None:
    """A key Supabase revoked must not outlive its lifespan because the endpoint is away."""
    endpoint = Endpoint(jwk("a"))
    keys = JwksKeys(endpoint.fetch, "test")
    await keys.key("a", 0.0)
    endpoint.down = True
    assert await refused(keys, "a", KEYS_LIFESPAN) == "unavailable"


async def test_callers_at_once_share_one_fetch() -> None:
    endpoint = Endpoint(jwk("a"))
    endpoint.gate = asyncio.Event()
    keys = JwksKeys(endpoint.fetch, "test")
    waiting = [asyncio.create_task(keys.key("a", 0.0)) for _ in range(20)]
    await asyncio.sleep(0)
    waiting[0].cancel()  # an editor that left: the others still get the key
    endpoint.gate.set()
    found = await asyncio.gather(*waiting[1:])
    assert endpoint.fetches == 1
    assert all(key is found[0] for key in found)


def test_parse_takes_signing_keys_and_names_the_only_one_for_tokens_without_kid() -> None:
    one = parse({"keys": [jwk("a"), jwk("e", use="enc"), {"kty": "nonsense", "kid": "x"}, "not a key"]})
    assert set(one) == {"a", None}
    assert one[None] is one["a"]
    two = parse({"keys": [jwk("a"), jwk("b")]})
    assert set(two) == {"a", "b"}
    assert parse({"keys": []}) == {}


@pytest.mark.parametrize("document", [[], {"keys": "a"}, {"no": "keys"}, "text", None])
def test_parse_refuses_what_is_not_a_jwks(document: object) -> None:
    with pytest.raises(FetchError, match="not a JWKS"):
        parse(document)
