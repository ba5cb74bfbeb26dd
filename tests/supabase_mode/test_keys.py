"""Supabase mode with a wrong key, an unreachable URL or a refusing PostgREST: a clear refusal at once,
or not ready until it works."""

from __future__ import annotations

import socket
import uuid

import pytest
from pydantic import SecretStr

from localsupabase.auth import make_key
from syncd.adapters.supabase import SupabaseBackend
from syncd.config import SupabaseSettings, WriterSettings
from syncd.core.ids import ProjectId
from syncd.errors import UpstreamError
from tests.supabase_mode.conftest import SUPABASE_PY_DEPRECATIONS, Stack, syncd_cli

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("describe", "key", "expected"),
    [
        ("signed with another secret", "forged", "SUPABASE_SERVICE_KEY was refused by"),
        ("the anon key", "anon", "SUPABASE_SERVICE_KEY has role 'anon', not 'service_role'"),
        ("not a JWT", "not-a-jwt", "SUPABASE_SERVICE_KEY is neither a JWT nor a secret key"),
        ("a publishable key", "publishable", "SUPABASE_SERVICE_KEY is a publishable key"),
        # Newer Supabase secret keys are not JWTs: the start-up probe, not their shape, decides.
        ("a secret key the project does not know", "unknown-secret", "SUPABASE_SERVICE_KEY was refused by"),
    ],
)
@pytest.mark.parametrize("command", [("run", "--port", "0"), ("project", "list")])
async def test_a_refused_key_is_one_line_and_exit_78(
    stack: Stack, describe: str, key: str, expected: str, command: tuple[str, ...]
) -> None:
    """A service key Supabase refuses (or that is no service key) stops syncd at once with code 78."""
    keys = {
        "forged": make_key("another-secret-of-the-right-length-0123456789", "service_role"),
        "anon": stack.supabase.anon_key,
        "not-a-jwt": "not-a-jwt",
        "publishable": "sb_publishable_0123456789abcdef",
        "unknown-secret": "sb_secret_0123456789abcdef",
    }
    env = stack.env({"SUPABASE_SERVICE_KEY": keys[key]})
    code, out, err = await syncd_cli(env, stack.tmp_path / "state", *command)
    assert code == 78, (describe, out, err)
    assert expected in err
    assert "Traceback" not in err
    assert "ready" not in out + err
    assert keys[key] not in out + err


async def test_an_unreachable_supabase_is_not_ready(stack: Stack) -> None:
    """With nothing at SUPABASE_URL the daemon serves but /readyz says why it is not ready."""
    daemon = await stack.start_daemon({"SUPABASE_URL": f"http://127.0.0.1:{_free_port()}"})
    status, body = await stack.readyz(daemon)
    assert (status, body["ready"]) == (503, False)
    assert "is not reachable" in body["reason"]
    assert "Supabase backend ready" not in daemon.stderr


async def test_project_list_without_supabase_is_one_line(stack: Stack) -> None:
    """``syncd project list`` against an unreachable Supabase fails with one line: no traceback, no
    retry warning, and no Realtime connection attempts (a one-shot command opens no Realtime socket)."""
    url = f"http://127.0.0.1:{_free_port()}"
    env = stack.env({"SUPABASE_URL": url})
    code, out, err = await syncd_cli(env, stack.tmp_path / "state", "project", "list")
    assert code == 1
    lines = err.splitlines()  # without asyncio's debug notes: syncd_cli leaves them out
    assert len(lines) == 1, err
    assert lines[0].startswith(f"syncd: Supabase at {url} is not reachable: ConnectError"), err
    assert out == ""


@SUPABASE_PY_DEPRECATIONS
async def test_a_read_refused_with_503_fails_after_one_request(stack: Stack) -> None:
    """supabase-py would retry a failed read three more times, 7 s of sleeping inside one call; the
    adapter turns that off, so that syncd's own answer to a failure (backoff, ``unavailable``) comes
    at once."""
    settings = SupabaseSettings(url=stack.supabase.url, service_key=SecretStr(stack.supabase.service_key))
    async with SupabaseBackend(settings, WriterSettings(), one_shot=True) as backend:
        stack.supabase.faults.rest_unavailable = True
        with pytest.raises(UpstreamError, match="PGRST001"):
            await backend.list_projects()
        with pytest.raises(UpstreamError, match="PGRST001"):
            await backend.project_owner(ProjectId(str(uuid.uuid4())))
    assert stack.supabase.faults.rest_refused == 2


async def test_a_project_without_syncds_migrations_is_one_line_and_exit_78(stack: Stack) -> None:
    """A Supabase project whose database lacks syncd's functions stops syncd at start, naming the fix."""
    await stack.pool.execute("drop function public.syncd_applied_mids(uuid)")
    await stack.pool.execute("notify pgrst, 'reload schema'")
    code, out, err = await syncd_cli(stack.env(), stack.tmp_path / "state", "run", "--port", "0")
    assert code == 78, (out, err)
    assert "lacks syncd's database functions (syncd_applied_mids)" in err
    assert "supabase/migrations" in err
    assert "Traceback" not in err
