"""Local mode's demo project is the seed's, and its own JWT secret signs the tokens of ``syncd token``."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from syncd.auth import LOCAL_SECRET_FILE, TokenVerifier, local_secret
from syncd.client import EditorClient
from syncd.client.errors import ClientClosed
from syncd.errors import ConfigError
from syncd.projects import DEMO_PROJECT_ID
from tests.support.daemon import DaemonProcess, run_syncd
from tests.support.postgres import PostgresServer, prepare_supabase_database, unique_database_name
from tests.support.store import query, store_rows

ALICE = "a11ce000-0000-4000-8000-000000000001"
COMPARED = {
    "projects": ("id", "user_id", "title", "script", "status", "aspect_ratio", "settings"),
    "scenes": ("id", "project_id", "scene_index", "heading", "body", "duration", "voice_id"),
    "clips": ("id", "project_id", "scene_id", "provider", "prompt", "status", "duration", "trim_start",
              "trim_end", "order_index", "metadata"),
    "voices": ("id", "user_id", "name", "provider", "voice_ref", "settings"),
}  # fmt: skip


def plain(value: Any) -> Any:
    """A column value as both stores give it to Python: JSON decoded, UUIDs and numbers alike."""
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None if value is None else str(value) if not isinstance(value, dict | list) else value


def test_local_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = local_secret(state)
    path = state / LOCAL_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.get_secret_value()) >= 48
    assert local_secret(state).get_secret_value() == first.get_secret_value()
    path.write_text("\n")
    with pytest.raises(ConfigError, match="the JWT secret file is empty"):
        local_secret(state)


async def test_syncd_token_is_accepted_by_the_daemons_check(tmp_path: Path) -> None:
    state = tmp_path / "state"
    printed = run_syncd(state, "token", ALICE, "--hours", "1")
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    verifier = TokenVerifier(jwt_secret=local_secret(state), jwks_url=None, audience="authenticated")
    assert await verifier.verify(token) == ALICE
    # A first token makes the state directory's secret: from the wrong folder that is a trap, so say so.
    assert printed.stderr == (
        f"syncd: made a new JWT secret in {state / 'jwt-secret'}; only a daemon with this state "
        "directory accepts the token\n"
    )
    assert run_syncd(state, "token", ALICE).stderr == ""
    refused = run_syncd(state, "token", ALICE, "--hours", "0")
    assert (refused.returncode, refused.stderr) == (78, "syncd: token: --hours must be above 0, not 0\n")
    shouted = run_syncd(state, "token", ALICE.upper()).stdout.strip()
    assert jwt.decode(shouted, options={"verify_signature": False})["sub"] == ALICE
    # The daemon files a token's user in lower case too, whoever signed it.
    signed_elsewhere = jwt.encode(
        {"sub": ALICE.upper(), "aud": "authenticated", "exp": time.time() + 60},
        local_secret(state).get_secret_value(),
        algorithm="HS256",
    )
    assert await verifier.verify(signed_elsewhere) == ALICE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("token", "alice"), "token: the user id must be a UUID (8-4-4-4-12 hex digits), not 'alice'"),
        (("token", ""), "token: the user id must be a UUID (8-4-4-4-12 hex digits), not ''"),
        (("project", "create", "Film", "--user", "alice"), "project create: --user must be a UUID"),
        (("project", "show", "nope"), "project show: the project id must be a UUID"),
    ],
)
def test_a_user_or_project_id_that_is_not_a_uuid_is_refused_before_anything_is_written(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Every id column is a UUID, and so is every user Supabase Auth makes: anything else is refused."""
    state = tmp_path / "state"
    refused = run_syncd(state, *args)
    assert refused.returncode == 78
    assert refused.stderr.startswith(f"syncd: {message}")
    assert refused.stdout == ""
    assert run_syncd(state, "project", "list").stdout == ""


@pytest.mark.parametrize("broken", ["not a database", "a file where the state directory should be"])
def test_a_store_that_cannot_be_opened_is_one_line_from_the_one_shot_commands(
    tmp_path: Path, broken: str
) -> None:
    """The one-shot commands say in one line what they could not open and why, as the daemon does,
    instead of a traceback, and leave the file as it was."""
    state = tmp_path / "state"
    if broken == "not a database":
        state.mkdir()
        kept = state / "store.db"
        expected = (
            f"syncd: cannot open the store {kept}: file is not a database; move it aside or restore it\n"
        )
        kept.write_bytes(b"not a database, only text " * 100)
    else:
        kept = state
        expected = f"syncd: cannot make the store's folder {state}: File exists\n"
        kept.write_text("")
    before = kept.read_bytes()
    for args in (("project", "list"), ("project", "create", "Film")):
        refused = run_syncd(state, *args)
        assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", expected)
    assert kept.read_bytes() == before


@pytest.mark.integration
async def test_a_user_owned_project_opens_locally_with_a_printed_token(tmp_path: Path) -> None:
    state = tmp_path / "state"
    created = run_syncd(state, "project", "create", "Alice's film", "--user", ALICE)
    project_id = created.stdout.strip()
    token = run_syncd(state, "token", ALICE).stdout.strip()
    daemon = DaemonProcess(state).start()
    try:
        async with EditorClient(daemon.url, project_id, token=token) as editor:
            assert editor.view.project is not None
            assert editor.view.project["title"] == "Alice's film"
        with pytest.raises(ClientClosed, match="this project needs a token"):
            async with EditorClient(daemon.url, project_id):
                pass
    finally:
        daemon.stop()


@pytest.mark.integration
async def test_the_local_demo_is_the_seeds_demo(tmp_path: Path, pg_server: PostgresServer) -> None:
    state = tmp_path / "state"
    daemon = DaemonProcess(state).start()
    daemon.stop()
    assert daemon.project_id == DEMO_PROJECT_ID
    assert "inspector: http://127.0.0.1:" in "\n".join(daemon.lines)
    name = unique_database_name("syncd_demo")
    seeded = await asyncpg.connect(prepare_supabase_database(pg_server, name, seed=True))
    try:
        for table, columns in COMPARED.items():
            where = "id = $1" if table in ("projects", "voices") else "project_id = $1"
            sql = f"select {', '.join(columns)} from public.{table} where {where} order by id"  # noqa: S608
            if table == "voices":
                sql = f"select {', '.join(columns)} from public.voices order by id"  # noqa: S608
                expected = [[plain(v) for v in r.values()] for r in await seeded.fetch(sql)]
                rows = query(state / "store.db", f"select {', '.join(columns)} from voices order by id")  # noqa: S608
                got = [[plain(v) for v in tuple(r)] for r in rows]
            else:
                expected = [[plain(v) for v in r.values()] for r in await seeded.fetch(sql, DEMO_PROJECT_ID)]
                local = sorted(store_rows(state, table, DEMO_PROJECT_ID).values(), key=lambda r: r["id"])
                got = [[plain(r[c]) for c in columns] for r in local]
            assert got == expected, table
    finally:
        await seeded.close()
        pg_server.drop_database(name)


async def test_the_printed_addresses_open_on_an_ipv6_address(tmp_path: Path) -> None:
    """What ``syncd run`` prints is copied into browsers and editors: ``ws://::1:8765`` would be no URL;
    the Python editor takes the daemon's and the API's address, as the TypeScript one does."""
    daemon = DaemonProcess(tmp_path / "state", args=("--host", "::1")).start()
    try:
        assert daemon.url.startswith("ws://[::1]:"), daemon.url
        async with EditorClient(daemon.url, DEMO_PROJECT_ID) as editor:
            assert editor.view.project is not None
        inspector = next(line for line in daemon.lines if line.startswith("inspector: "))
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(inspector.removeprefix("inspector: "))).status_code == 200
        api = next(line for line in daemon.lines if line.startswith("HTTP API: ")).split()[2]
        for address in (inspector.removeprefix("inspector: "), api):  # an editor takes them too
            async with EditorClient(address, DEMO_PROJECT_ID) as editor:
                assert editor.view.project is not None
    finally:
        daemon.stop()


def test_listening_on_every_address_without_a_public_url_is_refused_at_start(tmp_path: Path) -> None:
    """A local-mode daemon on 0.0.0.0 would store file URLs that no browser opens."""
    started = run_syncd(tmp_path / "state", "run", "--host", "0.0.0.0", "--port", "0")
    assert started.returncode == 78, started.stderr  # EX_CONFIG
    assert "gateway.host 0.0.0.0 listens on every address" in started.stderr
    assert not (tmp_path / "state").exists()
