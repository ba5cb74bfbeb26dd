"""The stand-in's signing key, as supabase-py's Auth client checks an ES256 access token with it."""

from __future__ import annotations

import uuid

import pytest
from client_support import ClientFactory
from supabase_auth.errors import AuthInvalidJwtError, AuthRetryableError

from localsupabase.app import LocalSupabase
from localsupabase.auth import SigningKey, make_user_token


async def test_supabase_py_verifies_an_es256_token_against_the_published_jwks(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """``auth.get_claims`` fetches /auth/v1/.well-known/jwks.json and checks the signature with its key."""
    client = await make_client(local_supabase.anon_key)
    user_id = str(uuid.uuid4())
    token = local_supabase.user_token(user_id, algorithm="ES256")
    answer = await client.auth.get_claims(jwt=token)
    assert answer is not None
    assert answer["claims"]["sub"] == user_id
    assert answer["headers"]["kid"] == local_supabase.signing_key.kid
    with pytest.raises(AuthInvalidJwtError, match="No matching signing key"):
        await client.auth.get_claims(jwt=make_user_token("unused", user_id, signing_key=SigningKey()))


async def test_the_jwks_endpoint_can_be_made_to_fail(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    client = await make_client(local_supabase.anon_key)
    local_supabase.faults.auth_unavailable = True
    with pytest.raises(AuthRetryableError) as caught:
        await client.auth.get_claims(jwt=local_supabase.user_token(str(uuid.uuid4()), algorithm="ES256"))
    assert caught.value.status == 503
