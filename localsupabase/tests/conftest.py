"""Fixtures of the stand-in's own tests: a PostgreSQL per session, a stand-in per test, supabase-py clients.

The database is prepared from the syncd repository's ``supabase/`` project (bootstrap, migrations, no
seed) once per session as a template; each test gets a clone of it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from client_support import SUPABASE_DIR, ClientFactory, UserFactory
from supabase import AClient, AsyncClientOptions, acreate_client

from localsupabase.app import LocalSupabase
from localsupabase.postgres import PostgresServer, prepare_supabase_database, project_sql_files

TEMPLATE_DB = "standin_template"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL 15 whose template database holds the bootstrap and the migrations."""
    with PostgresServer() as server:
        prepare_supabase_database(server, TEMPLATE_DB, project_sql_files(SUPABASE_DIR, seed=False))
        yield server


@pytest.fixture
def supabase_db(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh database cloned from the template, dropped after the test."""
    name = f"standin_test_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture
async def local_supabase(supabase_db: str) -> AsyncIterator[LocalSupabase]:
    """A running stand-in over a fresh database cloned from the template."""
    async with LocalSupabase(supabase_db) as stack:
        yield stack


@pytest.fixture
async def make_client(local_supabase: LocalSupabase) -> AsyncIterator[ClientFactory]:
    """Build supabase-py async clients for the stand-in; their HTTP connections are closed afterwards.

    Call it with ``key`` (an API key) and optionally ``token`` (a user's access token, sent as the bearer).
    """
    http_clients: list[httpx.AsyncClient] = []

    async def build(key: str, token: str | None = None) -> AClient:
        http = httpx.AsyncClient(timeout=10)
        http_clients.append(http)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        options = AsyncClientOptions(headers=headers, httpx_client=http)
        return await acreate_client(local_supabase.url, key, options=options)

    yield build
    for http in http_clients:
        await http.aclose()


@pytest.fixture
def new_user(local_supabase: LocalSupabase) -> UserFactory:
    """Create users in ``auth.users`` (their ids may own projects) and return their ids."""

    async def create() -> str:
        user_id = uuid.uuid4()
        await local_supabase.pool.execute(
            "insert into auth.users (id, email) values ($1, $2)", user_id, f"{user_id.hex[:8]}@example.test"
        )
        return str(user_id)

    return create
