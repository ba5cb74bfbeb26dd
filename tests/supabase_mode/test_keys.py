"""Supabase mode with a wrong key or an unreachable URL: a clear refusal, or not ready until it works."""

from __future__ import annotations

import socket

import pytest

from localsupabase.auth import make_key
from tests.supabase_mode.conftest import Stack, syncd_cli

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
        ("not a JWT", "not-a-jwt", "SUPABASE_SERVICE_KEY is not a JWT"),
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
    """``syncd project list`` against an unreachable Supabase fails with one line, not a traceback."""
    env = stack.env({"SUPABASE_URL": f"http://127.0.0.1:{_free_port()}"})
    code, _, err = await syncd_cli(env, stack.tmp_path / "state", "project", "list")
    assert code == 1
    assert "syncd: listing projects failed" in err
    assert "Traceback" not in err
