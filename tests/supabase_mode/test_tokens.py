"""Editors' ES256 tokens in Supabase mode: checked against the project's JWKS with no setting at all, as a
project on Supabase's signing keys issues them; a JWKS outage asks editors to retry, not to sign in."""

from __future__ import annotations

import uuid

import httpx
import pytest

from localsupabase.auth import SigningKey, make_user_token
from syncd.client import ClientClosed, EditorClient
from tests.supabase_mode.conftest import WAIT, Stack

pytestmark = pytest.mark.integration


async def owned_project(stack: Stack) -> tuple[str, str]:
    """A new user (an ``auth.users`` row) and a project of theirs: (user id, project id)."""
    user_id = str(uuid.uuid4())
    await stack.pool.execute("insert into auth.users (id) values ($1)", uuid.UUID(user_id))
    project_id = await stack.pool.fetchval(
        "insert into public.projects (title, user_id) values ('Signed', $1) returning id::text",
        uuid.UUID(user_id),
    )
    return user_id, str(project_id)


async def refusal(stack: Stack, url: str, project_id: str, token: str) -> tuple[int, list[tuple[str, str]]]:
    """The close code and the errors of an editor whose hello is refused."""
    editor = EditorClient(url, project_id, token=token, request_timeout=WAIT)
    stack.editors.append(editor)
    with pytest.raises(ClientClosed) as caught:
        await editor.connect()
    return caught.value.code, [(e.code, e.message) for e in editor.errors]


async def test_an_es256_token_opens_its_users_project_with_no_jwks_setting(stack: Stack) -> None:
    daemon = await stack.start_daemon()
    user_id, project_id = await owned_project(stack)
    editor = await stack.editor(
        daemon, project_id, token=stack.supabase.user_token(user_id, algorithm="ES256")
    )
    assert editor.view.project is not None
    assert editor.view.project["title"] == "Signed"

    # Signed by a key the project never published: refused for good, as a forged token is.
    forged = make_user_token("unused", user_id, signing_key=SigningKey())
    assert await refusal(stack, daemon.url, project_id, forged) == (
        4401,
        [("unauthorized", "token signing key not found in JWKS")],
    )
    # The HTTP API takes the same token.
    async with httpx.AsyncClient(timeout=WAIT) as http:
        answer = await http.get(
            f"{daemon.http}/v1/projects/{project_id}",
            headers={"Authorization": f"Bearer {stack.supabase.user_token(user_id, algorithm='ES256')}"},
        )
    assert answer.status_code == 200, answer.text


async def test_while_the_jwks_cannot_be_fetched_editors_are_told_to_retry(stack: Stack) -> None:
    """1011 and ``unavailable``, which clients retry, instead of 4401, which signs the user out."""
    stack.supabase.faults.auth_unavailable = True
    daemon = await stack.start_daemon()
    user_id, project_id = await owned_project(stack)
    token = stack.supabase.user_token(user_id, algorithm="ES256")
    code, errors = await refusal(stack, daemon.url, project_id, token)
    assert code == 1011
    assert errors == [("unavailable", "the token signing keys cannot be fetched now; try again shortly")]
    async with httpx.AsyncClient(timeout=WAIT) as http:
        answer = await http.get(
            f"{daemon.http}/v1/projects/{project_id}", headers={"Authorization": f"Bearer {token}"}
        )
    assert (answer.status_code, answer.json()["error"]) == (503, "unavailable")
    # HS256 tokens do not need the JWKS.
    editor = await stack.editor(daemon, project_id, token=stack.supabase.user_token(user_id))
    assert editor.view.project is not None
    await daemon.wait_log("cannot fetch the token signing keys from http://127.0.0.1:")
    assert token not in daemon.stderr
