"""Row level security of the six tables, exercised as each role on a real PostgreSQL."""

# Table and column names in the SQL below come from fixed tuples of this file, never from input.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.schema.world import (
    ACTORS,
    ALICE,
    ANON,
    BOB,
    OWNERS,
    REACH,
    SERVICE,
    TABLES,
    USER_IDS,
    Actor,
    Owner,
    acting_as,
    row_id,
)

# A column each actor may change harmlessly, per table.
_TOUCH: dict[str, tuple[str, Any]] = {
    "projects": ("title", "renamed"),
    "voices": ("name", "renamed"),
    "scenes": ("heading", "renamed"),
    "clips": ("prompt", "renamed"),
    "exports": ("resolution", "720p"),
    "audio_files": ("duration", 2.5),
}

_MATRIX = [
    pytest.param(table, actor, operation, id=f"{table}-{actor.name}-{operation}")
    for table in TABLES
    for actor in ACTORS
    for operation in ("read", "insert", "update", "delete")
]


def _owner_of_new_row(table: str, owner: Owner) -> tuple[str, list[Any]]:
    """Columns and values of a new row in ``table`` that belongs to ``owner``."""
    if table in ("projects", "voices"):
        return "user_id", [USER_IDS[owner]]
    return "project_id", [row_id("projects", owner)]


async def _attempt(conn: asyncpg.Connection, actor: Actor, sql: str, *args: Any) -> bool:
    """Run one statement as ``actor`` (rolled back); True if it touched a row, False if RLS stopped it."""
    try:
        async with acting_as(conn, actor):
            return bool(await conn.fetch(sql, *args))
    except asyncpg.InsufficientPrivilegeError as error:
        # Only a policy refusal counts as "not reached"; a missing grant would be a different failure.
        if "row-level security" not in str(error):
            raise
        return False


async def _reached(conn: asyncpg.Connection, table: str, actor: Actor, operation: str) -> set[Owner]:
    """The owners whose rows ``actor`` could act on with ``operation`` in ``table``."""
    if operation == "read":
        async with acting_as(conn, actor):
            visible = {record["id"] for record in await conn.fetch(f"select id from public.{table}")}
        return {owner for owner in OWNERS if row_id(table, owner) in visible}
    reached: set[Owner] = set()
    for owner in OWNERS:
        if operation == "insert":
            column, values = _owner_of_new_row(table, owner)
            sql = f"insert into public.{table} ({column}) values ($1) returning id"
        elif operation == "update":
            column, value = _TOUCH[table]
            sql = f"update public.{table} set {column} = $2 where id = $1 returning id"
            values = [row_id(table, owner), value]
        else:
            sql, values = f"delete from public.{table} where id = $1 returning id", [row_id(table, owner)]
        if await _attempt(conn, actor, sql, *values):
            reached.add(owner)
    return reached


@pytest.mark.parametrize(("table", "actor", "operation"), _MATRIX)
async def test_each_role_reaches_exactly_the_rows_it_owns(
    world: asyncpg.Connection, table: str, actor: Actor, operation: str
) -> None:
    """Each role can read, insert, update and delete exactly the rows of the projects it owns."""
    assert await _reached(world, table, actor, operation) == REACH[actor.name]


# Writes that would move a row out of reach of its owner or into someone else's; each must be refused.
_MOVES: tuple[tuple[Actor, Owner, Owner], ...] = (
    (ALICE, "alice", "bob"),
    (ANON, "anon", "alice"),
    (ALICE, "alice", "anon"),
)
_SET_PROJECT_OWNER = "update public.projects set user_id = $2 where id = $1"
_FORBIDDEN_WRITES = [
    pytest.param(ALICE, _SET_PROJECT_OWNER, [row_id("projects", "alice"), USER_IDS["bob"]],
                 id="alice-gives-project-to-bob"),
    pytest.param(ALICE, _SET_PROJECT_OWNER, [row_id("projects", "alice"), None],
                 id="alice-gives-project-to-anonymous"),
    pytest.param(ANON, _SET_PROJECT_OWNER, [row_id("projects", "anon"), USER_IDS["alice"]],
                 id="anon-gives-project-to-alice"),
    pytest.param(ALICE, "update public.voices set user_id = $2 where id = $1",
                 [row_id("voices", "alice"), USER_IDS["bob"]], id="alice-gives-voice-to-bob"),
    *(
        pytest.param(actor, f"update public.{table} set project_id = $2 where id = $1",
                     [row_id(table, owner), row_id("projects", target)],
                     id=f"{actor.name}-moves-{table}-to-{target}")
        for table in ("scenes", "clips", "exports", "audio_files")
        for actor, owner, target in _MOVES
    ),
    pytest.param(ALICE, "update public.scenes set voice_id = $2 where id = $1",
                 [row_id("scenes", "alice"), row_id("voices", "bob")], id="alice-uses-bobs-voice"),
    pytest.param(ALICE, "update public.scenes set voice_id = $2 where id = $1",
                 [row_id("scenes", "alice"), row_id("voices", "anon")], id="alice-uses-anonymous-voice"),
    pytest.param(ANON, "update public.scenes set voice_id = $2 where id = $1",
                 [row_id("scenes", "anon"), row_id("voices", "alice")], id="anon-uses-alices-voice"),
    pytest.param(ALICE, "update public.clips set scene_id = $2 where id = $1",
                 [row_id("clips", "alice"), row_id("scenes", "bob")], id="alice-links-clip-to-bobs-scene"),
    pytest.param(ALICE, "update public.audio_files set scene_id = $2 where id = $1",
                 [row_id("audio_files", "alice"), row_id("scenes", "bob")],
                 id="alice-links-audio-to-bobs-scene"),
    pytest.param(ALICE, "update public.audio_files set voice_id = $2 where id = $1",
                 [row_id("audio_files", "alice"), row_id("voices", "bob")],
                 id="alice-links-audio-to-bobs-voice"),
    pytest.param(BOB, "insert into public.clips (project_id, scene_id) values ($1, $2)",
                 [row_id("projects", "bob"), row_id("scenes", "alice")],
                 id="bob-inserts-clip-on-alices-scene"),
]  # fmt: skip


@pytest.mark.parametrize(("actor", "sql", "args"), _FORBIDDEN_WRITES)
async def test_writes_that_cross_owners_are_refused(
    world: asyncpg.Connection, actor: Actor, sql: str, args: list[Any]
) -> None:
    """A write that would hand a row to another owner or link it to another owner's row is refused."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with acting_as(world, actor):
            await world.execute(sql, *args)


_ALLOWED_LINKS = [
    pytest.param(ALICE, "update public.scenes set voice_id = $2 where id = $1 returning id",
                 [row_id("scenes", "alice"), row_id("voices", "alice")], id="alice-own-voice"),
    pytest.param(ALICE, "update public.clips set scene_id = $2 where id = $1 returning id",
                 [row_id("clips", "alice"), row_id("scenes", "alice")], id="alice-own-scene"),
    pytest.param(ANON,
                 "update public.audio_files set voice_id = $2, scene_id = $3 where id = $1 returning id",
                 [row_id("audio_files", "anon"), row_id("voices", "anon"), row_id("scenes", "anon")],
                 id="anon-own-voice-and-scene"),
    pytest.param(ALICE, "update public.clips set scene_id = null where id = $1 returning id",
                 [row_id("clips", "alice")], id="alice-unlinks-scene"),
    pytest.param(SERVICE, "update public.scenes set project_id = $2 where id = $1 returning id",
                 [row_id("scenes", "alice"), row_id("projects", "bob")], id="service-moves-scene"),
]  # fmt: skip


@pytest.mark.parametrize(("actor", "sql", "args"), _ALLOWED_LINKS)
async def test_links_within_ones_own_rows_are_allowed(
    world: asyncpg.Connection, actor: Actor, sql: str, args: list[Any]
) -> None:
    """Linking rows of the same owner passes the checks that refuse links across owners."""
    async with acting_as(world, actor):
        assert await world.fetch(sql, *args)


@pytest.mark.parametrize(
    ("actor", "expected_owner"),
    [(ANON, None), (ALICE, USER_IDS["alice"]), (BOB, USER_IDS["bob"])],
    ids=["anon", "alice", "bob"],
)
@pytest.mark.parametrize("table", ["projects", "voices"])
async def test_new_rows_belong_to_their_creator_by_default(
    world: asyncpg.Connection, table: str, actor: Actor, expected_owner: uuid.UUID | None
) -> None:
    """A project or voice inserted without user_id belongs to the signed-in user, or to nobody for anon."""
    async with acting_as(world, actor):
        owner = await world.fetchval(f"insert into public.{table} default values returning user_id")
    assert owner == expected_owner


async def test_only_service_role_bypasses_rls(world: asyncpg.Connection) -> None:
    """service_role carries BYPASSRLS while anon and authenticated do not, and RLS is on for all tables."""
    bypass = dict(
        await world.fetch(
            "select rolname, rolbypassrls from pg_roles"
            " where rolname in ('anon', 'authenticated', 'service_role')"
        )
    )
    assert bypass == {"anon": False, "authenticated": False, "service_role": True}
    rls = dict(
        await world.fetch(
            "select relname, relrowsecurity from pg_class"
            " where relnamespace = 'public'::regnamespace and relname = any($1::text[])",
            list(TABLES),
        )
    )
    assert rls == dict.fromkeys(TABLES, True)


async def test_signed_in_user_without_rows_sees_nothing(world: asyncpg.Connection) -> None:
    """A signed-in user who owns nothing sees no rows at all, not even the anonymous ones."""
    stranger = Actor("carol", "authenticated", uuid.UUID("c0000000-0000-4000-8000-000000000003"))
    async with acting_as(world, stranger):
        for table in TABLES:
            assert await world.fetchval(f"select count(*) from public.{table}") == 0, table
