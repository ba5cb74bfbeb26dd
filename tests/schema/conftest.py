"""Fixtures of the schema tests: a database holding the world of tests/schema/world.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.schema.world import world_sql
from tests.support.postgres import TEMPLATE_DB, PostgresServer, unique_database_name


@pytest.fixture(scope="module")
def world_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a database cloned from the template and filled with the world, shared by a module."""
    name = unique_database_name("syncd_world")
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    try:
        pg_server.psql(name, world_sql())
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture
async def world(world_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the world database; tests change it only in rolled-back transactions."""
    conn = await asyncpg.connect(world_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def db(supabase_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to a fresh, empty database of this test alone."""
    conn = await asyncpg.connect(supabase_db)
    try:
        yield conn
    finally:
        await conn.close()
