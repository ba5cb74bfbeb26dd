"""The six tables: columns, constraints, triggers, cascades, indexes and the realtime setup."""

# Table and column names in the SQL below come from fixed tuples of this file, never from input.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.schema.world import ALICE, TABLES, USER_IDS, acting_as

# (column, type, nullable) of every table, as the studio and syncd/core/schema.py expect them.
_COMMON_HEAD = [("id", "uuid", False)]
_COMMON_TAIL = [
    ("created_at", "timestamp with time zone", False),
    ("updated_at", "timestamp with time zone", False),
]
_VERSION = [("version", "bigint", False)]
_COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "projects": [
        *_COMMON_HEAD,
        ("user_id", "uuid", True),
        ("title", "text", False),
        ("script", "text", False),
        ("status", "text", False),
        ("aspect_ratio", "text", False),
        ("settings", "jsonb", False),
        *_VERSION,
        *_COMMON_TAIL,
    ],
    "voices": [
        *_COMMON_HEAD,
        ("user_id", "uuid", True),
        ("name", "text", False),
        ("provider", "text", False),
        ("voice_ref", "text", False),
        ("sample_url", "text", True),
        ("settings", "jsonb", False),
        *_COMMON_TAIL,
    ],
    "scenes": [
        *_COMMON_HEAD,
        ("project_id", "uuid", False),
        ("scene_index", "integer", False),
        ("heading", "text", False),
        ("body", "text", False),
        ("duration", "double precision", False),
        ("voice_id", "uuid", True),
        *_VERSION,
        *_COMMON_TAIL,
    ],
    "clips": [
        *_COMMON_HEAD,
        ("project_id", "uuid", False),
        ("scene_id", "uuid", True),
        ("provider", "text", False),
        ("prompt", "text", False),
        ("file_url", "text", True),
        ("thumbnail_url", "text", True),
        ("status", "text", False),
        ("duration", "double precision", False),
        ("trim_start", "double precision", False),
        ("trim_end", "double precision", True),
        ("order_index", "integer", False),
        ("metadata", "jsonb", False),
        *_VERSION,
        *_COMMON_TAIL,
    ],
    "exports": [
        *_COMMON_HEAD,
        ("project_id", "uuid", False),
        ("status", "text", False),
        ("format", "text", False),
        ("resolution", "text", False),
        ("progress", "double precision", False),
        ("file_url", "text", True),
        ("error", "text", True),
        *_COMMON_TAIL,
    ],
    "audio_files": [
        *_COMMON_HEAD,
        ("project_id", "uuid", False),
        ("scene_id", "uuid", True),
        ("voice_id", "uuid", True),
        ("kind", "text", False),
        ("file_url", "text", True),
        ("duration", "double precision", False),
        *_COMMON_TAIL,
    ],
}

_NEW_ROW: dict[str, str] = {
    "projects": "insert into public.projects default values returning id",
    "voices": "insert into public.voices default values returning id",
    "scenes": "insert into public.scenes (project_id) values ($1) returning id",
    "clips": "insert into public.clips (project_id) values ($1) returning id",
    "exports": "insert into public.exports (project_id) values ($1) returning id",
    "audio_files": "insert into public.audio_files (project_id) values ($1) returning id",
}


async def _new_row(db: asyncpg.Connection, table: str) -> Any:
    """Insert a row with defaults into ``table`` (and a parent project if it needs one); return its id."""
    if table in ("projects", "voices"):
        return await db.fetchval(_NEW_ROW[table])
    project = await db.fetchval(_NEW_ROW["projects"])
    return await db.fetchval(_NEW_ROW[table], project)


async def test_tables_have_exactly_the_expected_columns(db: asyncpg.Connection) -> None:
    """Each of the six tables has exactly the agreed columns, types and nullability, in order."""
    rows = await db.fetch(
        "select table_name, column_name, data_type, is_nullable = 'YES' as nullable"
        " from information_schema.columns where table_schema = 'public' and table_name = any($1::text[])"
        " order by table_name, ordinal_position",
        list(TABLES),
    )
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for row in rows:
        found.setdefault(row["table_name"], []).append(
            (row["column_name"], row["data_type"], row["nullable"])
        )
    assert found == _COLUMNS


@pytest.mark.parametrize("table", TABLES)
async def test_defaults_make_a_valid_row(db: asyncpg.Connection, table: str) -> None:
    """A row inserted with only its parent set gets the documented defaults."""
    row = await db.fetchrow(f"select * from public.{table} where id = $1", await _new_row(db, table))
    assert row is not None
    assert row["created_at"] == row["updated_at"]
    expected: dict[str, dict[str, Any]] = {
        "projects": {
            "title": "Untitled project",
            "status": "draft",
            "aspect_ratio": "16:9",
            "settings": "{}",
        },
        "voices": {"name": "", "settings": "{}", "user_id": None},
        "scenes": {"scene_index": 0, "heading": "", "duration": 0.0, "voice_id": None},
        "clips": {
            "status": "pending",
            "trim_start": 0.0,
            "trim_end": None,
            "order_index": 0,
            "metadata": "{}",
        },
        "exports": {"status": "queued", "format": "mp4", "resolution": "1080p", "progress": 0.0},
        "audio_files": {"kind": "voice", "duration": 0.0, "scene_id": None},
    }
    assert {key: row[key] for key in expected[table]} == expected[table]
    if "version" in row:
        assert row["version"] == 1


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("projects", "status", "published"),
        ("projects", "aspect_ratio", "2:1"),
        ("scenes", "duration", -0.5),
        ("clips", "status", "done"),
        ("exports", "status", "ready"),
        ("exports", "format", "avi"),
        ("exports", "progress", 1.5),
        ("exports", "progress", -0.1),
        ("audio_files", "kind", "speech"),
    ],
)
async def test_checks_refuse_values_outside_the_allowed_set(
    db: asyncpg.Connection, table: str, column: str, value: Any
) -> None:
    """A value outside a column's allowed set or range is refused by a check constraint."""
    row = await _new_row(db, table)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(f"update public.{table} set {column} = $2 where id = $1", row, value)


@pytest.mark.parametrize("table", ["projects", "scenes", "clips"])
async def test_version_rises_by_one_on_every_update(db: asyncpg.Connection, table: str) -> None:
    """Every update raises version by exactly one, whatever value the caller tries to set."""
    row = await _new_row(db, table)
    versions = [await db.fetchval(f"select version from public.{table} where id = $1", row)]
    for assignment in ("updated_at = now()", "version = 100", "version = version - 5", "version = 2"):
        versions.append(
            await db.fetchval(f"update public.{table} set {assignment} where id = $1 returning version", row)
        )
    assert versions == [1, 2, 3, 4, 5]


async def test_version_rises_per_row_in_a_multi_row_update(db: asyncpg.Connection) -> None:
    """An update of several rows raises each row's own version by one."""
    project = await _new_row(db, "projects")
    for index in range(3):
        await db.execute(
            "insert into public.scenes (project_id, scene_index) values ($1, $2)", project, index
        )
    await db.execute("update public.scenes set heading = 'x' where scene_index = 1")
    await db.execute("update public.scenes set scene_index = scene_index + 10 where project_id = $1", project)
    versions = await db.fetch("select scene_index, version from public.scenes order by scene_index")
    assert [tuple(row) for row in versions] == [(10, 2), (11, 3), (12, 2)]


async def test_version_rises_for_updates_through_the_api_roles(db: asyncpg.Connection) -> None:
    """An update by a signed-in user through RLS raises the version like any other update."""
    await db.execute("insert into auth.users (id) values ($1)", USER_IDS["alice"])
    project = await db.fetchval(
        "insert into public.projects (user_id) values ($1) returning id", USER_IDS["alice"]
    )
    async with acting_as(db, ALICE, commit=True):
        await db.execute("update public.projects set title = 'mine', version = 0 where id = $1", project)
    assert await db.fetchval("select version from public.projects where id = $1", project) == 2


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_moves_on_update_and_created_at_stays(db: asyncpg.Connection, table: str) -> None:
    """A later update moves updated_at forward, whatever the caller sets, and keeps created_at."""
    row = await _new_row(db, table)
    before = await db.fetchrow(f"select created_at, updated_at from public.{table} where id = $1", row)
    after = await db.fetchrow(
        f"update public.{table} set updated_at = '2000-01-01', created_at = created_at where id = $1"
        " returning created_at, updated_at",
        row,
    )
    assert before is not None
    assert after is not None
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]


async def _count(db: asyncpg.Connection, table: str, project: Any) -> int:
    count: int = await db.fetchval(f"select count(*) from public.{table} where project_id = $1", project)
    return count


async def test_deleting_a_project_deletes_its_children_only(db: asyncpg.Connection) -> None:
    """Deleting a project deletes its scenes, clips, exports and audio files, and nothing of others."""
    doomed, kept = await _new_row(db, "projects"), await _new_row(db, "projects")
    for project in (doomed, kept):
        scene = await db.fetchval("insert into public.scenes (project_id) values ($1) returning id", project)
        await db.execute("insert into public.clips (project_id, scene_id) values ($1, $2)", project, scene)
        await db.execute("insert into public.exports (project_id) values ($1)", project)
        await db.execute(
            "insert into public.audio_files (project_id, scene_id) values ($1, $2)", project, scene
        )
    children = ("scenes", "clips", "exports", "audio_files")
    await db.execute("delete from public.projects where id = $1", doomed)
    assert [await _count(db, table, doomed) for table in children] == [0, 0, 0, 0]
    assert [await _count(db, table, kept) for table in children] == [1, 1, 1, 1]


async def test_deleting_a_scene_or_voice_unlinks_its_users(db: asyncpg.Connection) -> None:
    """Deleting a scene or a voice keeps the clips, scenes and audio that used it, with the link cleared."""
    project = await _new_row(db, "projects")
    voice = await _new_row(db, "voices")
    scene = await db.fetchval(
        "insert into public.scenes (project_id, voice_id) values ($1, $2) returning id", project, voice
    )
    clip = await db.fetchval(
        "insert into public.clips (project_id, scene_id) values ($1, $2) returning id", project, scene
    )
    audio = await db.fetchval(
        "insert into public.audio_files (project_id, scene_id, voice_id) values ($1, $2, $3) returning id",
        project,
        scene,
        voice,
    )
    await db.execute("delete from public.voices where id = $1", voice)
    assert await db.fetchval("select voice_id from public.scenes where id = $1", scene) is None
    assert await db.fetchval("select voice_id from public.audio_files where id = $1", audio) is None
    await db.execute("delete from public.scenes where id = $1", scene)
    assert await db.fetchval("select scene_id from public.clips where id = $1", clip) is None
    assert await db.fetchval("select scene_id from public.audio_files where id = $1", audio) is None


async def test_deleting_a_user_deletes_their_projects_and_voices(db: asyncpg.Connection) -> None:
    """Removing a user from auth.users deletes their projects (with children) and voices."""
    user = USER_IDS["alice"]
    await db.execute("insert into auth.users (id) values ($1)", user)
    project = await db.fetchval("insert into public.projects (user_id) values ($1) returning id", user)
    await db.execute("insert into public.scenes (project_id) values ($1)", project)
    await db.execute("insert into public.voices (user_id) values ($1)", user)
    await db.execute("delete from auth.users where id = $1", user)
    counts = [
        await db.fetchval(f"select count(*) from public.{table}")
        for table in ("projects", "scenes", "voices")
    ]
    assert counts == [0, 0, 0]


async def test_every_foreign_key_is_indexed(db: asyncpg.Connection) -> None:
    """Each foreign key of the six tables is the leading part of some index, and the orderings are indexed."""
    foreign_keys = await db.fetch(
        "select conrelid::regclass::text as tab, conkey from pg_constraint"
        " where contype = 'f' and connamespace = 'public'::regnamespace"
        " and conrelid::regclass::text = any($1::text[])",
        list(TABLES),
    )
    indexes = await db.fetch(
        "select indrelid::regclass::text as tab, indkey::int2[] as cols,"
        " array(select attname::text from unnest(indkey::int2[]) with ordinality as k(num, pos)"
        "  join pg_attribute on attrelid = indrelid and attnum = k.num order by k.pos) as names"
        " from pg_index join pg_class on pg_class.oid = indrelid"
        " where relnamespace = 'public'::regnamespace"
    )
    assert len(foreign_keys) == 10
    for fk in foreign_keys:
        width = len(fk["conkey"])
        assert any(
            index["tab"] == fk["tab"] and list(index["cols"][:width]) == list(fk["conkey"])
            for index in indexes
        ), f"{fk['tab']} {fk['conkey']} has no index"
    names = {(index["tab"], tuple(index["names"])) for index in indexes}
    assert ("scenes", ("project_id", "scene_index")) in names
    assert ("clips", ("project_id", "order_index")) in names
    assert ("projects", ("user_id",)) in names


async def test_realtime_publication_holds_exactly_the_synced_tables(db: asyncpg.Connection) -> None:
    """The supabase_realtime publication publishes the synced and the side tables, not voices."""
    tables = await db.fetch(
        "select schemaname, tablename from pg_publication_tables where pubname = 'supabase_realtime'"
    )
    assert sorted((row["schemaname"], row["tablename"]) for row in tables) == [
        ("public", "audio_files"),
        ("public", "clips"),
        ("public", "exports"),
        ("public", "projects"),
        ("public", "scenes"),
    ]


async def test_synced_tables_have_full_replica_identity(db: asyncpg.Connection) -> None:
    """The synced and the side tables log whole old rows; voices keep the default identity."""
    identities = dict(
        await db.fetch(
            "select relname, relreplident::text from pg_class"
            " where relnamespace = 'public'::regnamespace and relname = any($1::text[])",
            list(TABLES),
        )
    )
    assert identities == {
        "projects": "f",
        "scenes": "f",
        "clips": "f",
        "voices": "d",
        "exports": "f",
        "audio_files": "f",
    }


async def test_api_roles_hold_table_privileges(db: asyncpg.Connection) -> None:
    """anon, authenticated and service_role may select, insert, update and delete on every table."""
    for role in ("anon", "authenticated", "service_role"):
        for table in TABLES:
            for privilege in ("select", "insert", "update", "delete"):
                assert await db.fetchval(
                    "select has_table_privilege($1, $2, $3)", role, f"public.{table}", privilege
                ), (role, table, privilege)
