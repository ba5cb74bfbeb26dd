"""The demo seed: it loads on the migrated schema, twice, and belongs to the anonymous studio."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.schema.world import ALICE, ANON, acting_as
from tests.support.postgres import SEED_SQL, PostgresServer, prepare_supabase_database, unique_database_name

DEMO_PROJECT = uuid.UUID("0f000000-0000-4000-8000-000000000001")
DEMO_VOICE = uuid.UUID("0f000000-0000-4000-8000-000000000101")
DEMO_SCENES = [uuid.UUID(f"0f000000-0000-4000-8000-00000000020{n}") for n in (1, 2, 3)]
DEMO_CLIPS = [uuid.UUID(f"0f000000-0000-4000-8000-00000000030{n}") for n in (1, 2, 3)]


@pytest.fixture
async def seeded(pg_server: PostgresServer) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to a database prepared with bootstrap, migrations and seed."""
    name = unique_database_name("syncd_seeded")
    dsn = prepare_supabase_database(pg_server, name, seed=True)
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
        pg_server.drop_database(name)


async def test_seed_loads_the_demo_project(seeded: asyncpg.Connection) -> None:
    """The seed holds the Lighthouse project with its voice, three ordered scenes and three ordered clips."""
    project = await seeded.fetchrow("select * from public.projects where id = $1", DEMO_PROJECT)
    assert project is not None
    assert (project["title"], project["user_id"], project["version"]) == ("Demo: The Lighthouse", None, 1)
    scenes = await seeded.fetch(
        "select id, scene_index, voice_id from public.scenes where project_id = $1 order by scene_index",
        DEMO_PROJECT,
    )
    assert [(row["id"], row["scene_index"], row["voice_id"]) for row in scenes] == [
        (scene, index, DEMO_VOICE) for index, scene in enumerate(DEMO_SCENES)
    ]
    clips = await seeded.fetch(
        "select id, scene_id from public.clips where project_id = $1 order by order_index", DEMO_PROJECT
    )
    assert [(row["id"], row["scene_id"]) for row in clips] == list(zip(DEMO_CLIPS, DEMO_SCENES, strict=True))
    assert await seeded.fetchval("select count(*) from public.voices where user_id is null") == 1


async def test_seed_is_the_anonymous_studios(seeded: asyncpg.Connection) -> None:
    """The anon role sees the whole demo, and a signed-in user sees none of it."""
    counts = "select (select count(*) from public.projects), (select count(*) from public.scenes),"
    counts += " (select count(*) from public.clips), (select count(*) from public.voices)"
    async with acting_as(seeded, ANON):
        assert tuple(await seeded.fetchrow(counts) or ()) == (1, 3, 3, 1)
    await seeded.execute("insert into auth.users (id) values ($1)", ALICE.user_id)
    async with acting_as(seeded, ALICE):
        assert tuple(await seeded.fetchrow(counts) or ()) == (0, 0, 0, 0)


async def test_seed_can_run_again(seeded: asyncpg.Connection, pg_server: PostgresServer) -> None:
    """Running the seed on a seeded database changes nothing and raises nothing."""
    before = await seeded.fetch("select id, version, updated_at from public.scenes order by id")
    name = await seeded.fetchval("select current_database()")
    pg_server.psql(name, SEED_SQL)
    assert await seeded.fetch("select id, version, updated_at from public.scenes order by id") == before
