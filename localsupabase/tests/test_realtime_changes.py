"""postgres_changes from the stand-in, as realtime-py 2.34.1 and supabase-py receive them."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from client_support import ClientFactory, UserFactory
from realtime import AsyncRealtimeClient
from realtime.types import RealtimePostgresChangesListenEvent
from realtime_support import (
    Recorder,
    make_quick,
    realtime_client,
    record_of,
    subscribe_scenes,
    wait_until,
)

from localsupabase import auth
from localsupabase.app import LocalSupabase
from localsupabase.faults import Faults
from localsupabase.realtime import RealtimeConfig, RealtimeServer

pytestmark = pytest.mark.integration

COMMIT_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TIMESTAMPTZ = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00$")

SCENE_COLUMNS = [
    {"name": "id", "type": "uuid"},
    {"name": "project_id", "type": "uuid"},
    {"name": "scene_index", "type": "int4"},
    {"name": "heading", "type": "text"},
    {"name": "body", "type": "text"},
    {"name": "duration", "type": "float8"},
    {"name": "voice_id", "type": "uuid"},
    {"name": "version", "type": "int8"},
    {"name": "created_at", "type": "timestamptz"},
    {"name": "updated_at", "type": "timestamptz"},
]


@pytest.fixture
def stack(local_supabase: LocalSupabase) -> LocalSupabase:
    """The stand-in with its Realtime waits shortened."""
    return make_quick(local_supabase)


async def _project(stack: LocalSupabase, user_id: str | None = None) -> str:
    project_id: str = await stack.pool.fetchval(
        "insert into public.projects (title, user_id) values ('p', $1::text::uuid) returning id::text",
        user_id,
    )
    return project_id


async def _row(stack: LocalSupabase, table: str, row_id: str) -> dict[str, Any]:
    """The row as PostgreSQL's to_jsonb renders it: what Realtime's values must equal."""
    text = await stack.pool.fetchval(
        f"select to_jsonb(t)::text from public.{table} t where id = $1::text::uuid",  # noqa: S608 - fixed names
        row_id,
    )
    row: dict[str, Any] = json.loads(text)
    return row


async def test_insert_update_delete_arrive_in_realtime_shape(stack: LocalSupabase) -> None:
    """INSERT, UPDATE and DELETE on a filtered binding carry exactly Realtime's keys, types and values."""
    project_id = await _project(stack)
    recorder = Recorder()
    async with realtime_client(stack) as client:
        channel = await subscribe_scenes(client, recorder, filter=f"project_id=eq.{project_id}")
        binding_id = channel.postgres_changes_callbacks[0].id
        assert binding_id is not None
        assert 0 < binding_id < 2**27

        scene_id = await stack.pool.fetchval(
            "insert into public.scenes (project_id, scene_index, heading, duration)"
            " values ($1::text::uuid, 3, 'Intro', 1.5) returning id::text",
            project_id,
        )
        inserted = await recorder.next_change(0)
        after_insert = await _row(stack, "scenes", scene_id)
        await stack.pool.execute(
            "update public.scenes set body = 'Once upon' where id = $1::text::uuid", scene_id
        )
        updated = await recorder.next_change(1)
        after_update = await _row(stack, "scenes", scene_id)
        await stack.pool.execute("delete from public.scenes where id = $1::text::uuid", scene_id)
        deleted = await recorder.next_change(2)

    assert recorder.states == ["SUBSCRIBED"]
    for change in (inserted, updated, deleted):
        assert change["ids"] == [binding_id]
        data = change["data"]
        assert data["schema"] == "public"
        assert data["table"] == "scenes"
        assert data["columns"] == SCENE_COLUMNS
        assert data["errors"] is None
        assert COMMIT_TIMESTAMP.match(data["commit_timestamp"])

    insert_data: dict[str, Any] = dict(inserted["data"])
    assert set(insert_data) == {"schema", "table", "commit_timestamp", "type", "columns", "record", "errors"}
    assert insert_data["type"] == "INSERT"
    assert insert_data["record"] == after_insert
    record = insert_data["record"]
    assert (record["scene_index"], record["duration"], record["version"]) == (3, 1.5, 1)
    assert record["voice_id"] is None
    assert TIMESTAMPTZ.match(record["created_at"])

    update_data: dict[str, Any] = dict(updated["data"])
    assert set(update_data) == {
        "schema",
        "table",
        "commit_timestamp",
        "type",
        "columns",
        "record",
        "old_record",
        "errors",
    }
    assert update_data["type"] == "UPDATE"
    assert update_data["record"] == after_update
    # scenes has REPLICA IDENTITY FULL: the whole old row comes along.
    assert update_data["old_record"] == after_insert

    delete_data: dict[str, Any] = dict(deleted["data"])
    assert set(delete_data) == {
        "schema",
        "table",
        "commit_timestamp",
        "type",
        "columns",
        "old_record",
        "errors",
    }
    assert delete_data["type"] == "DELETE"
    # On a table with RLS, Realtime cuts a DELETE's old record down to the primary key.
    assert delete_data["old_record"] == {"id": scene_id}


async def test_jsonb_int8_and_timestamptz_values_are_real_json(stack: LocalSupabase) -> None:
    """A jsonb column arrives as nested JSON, bigint as a number and timestamptz as ISO 8601 with offset."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        await stack.pool.execute(
            "insert into public.projects (title, settings) values ($1, $2::text::jsonb)",
            "json",
            '{"fps": 30, "tags": ["a", 2.5]}',
        )
        change = await recorder.next_change(0)

    record = change["data"].get("record")
    assert record is not None
    assert record["settings"] == {"fps": 30, "tags": ["a", 2.5]}
    assert record["version"] == 1
    assert TIMESTAMPTZ.match(record["updated_at"])
    types = {column["name"]: column["type"] for column in change["data"]["columns"]}
    assert (types["settings"], types["version"], types["updated_at"]) == ("jsonb", "int8", "timestamptz")


async def test_update_that_leaves_the_filter_is_not_delivered(stack: LocalSupabase) -> None:
    """An UPDATE moving a row out of the filtered project is dropped; one moving a row in is delivered."""
    inside, outside = await _project(stack), await _project(stack)
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, filter=f"project_id=eq.{inside}")
        leaving = await stack.pool.fetchval(
            "insert into public.scenes (project_id, heading)"
            " values ($1::text::uuid, 'leaving') returning id::text",
            inside,
        )
        await recorder.next_change(0)
        await stack.pool.execute(
            "update public.scenes set project_id = $2::text::uuid where id = $1::text::uuid", leaving, outside
        )
        await stack.pool.execute(
            "update public.scenes set project_id = $2::text::uuid where id = $1::text::uuid", leaving, inside
        )
        moved_in = await recorder.next_change(1)
        await stack.pool.execute(
            "update public.scenes set heading = 'marker' where id = $1::text::uuid", leaving
        )
        marker = await recorder.next_change(2)

    assert [change["data"]["type"] for change in recorder.changes] == ["INSERT", "UPDATE", "UPDATE"]
    assert record_of(moved_in)["project_id"] == inside
    assert record_of(moved_in, "old_record")["project_id"] == outside
    assert record_of(marker)["heading"] == "marker"


async def test_default_replica_identity_sends_only_the_primary_key(stack: LocalSupabase) -> None:
    """With REPLICA IDENTITY DEFAULT, UPDATE and DELETE carry only the primary key as old_record."""
    await stack.pool.execute(
        """
        create table public.notes (id bigint primary key, body text not null, weight numeric not null);
        grant all on public.notes to anon, authenticated, service_role;
        alter publication supabase_realtime add table public.notes;
        """
    )
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="notes")
        await stack.pool.execute("insert into public.notes values (7, 'a', 2.50)")
        inserted = await recorder.next_change(0)
        await stack.pool.execute("update public.notes set body = 'b' where id = 7")
        updated = await recorder.next_change(1)
        await stack.pool.execute("delete from public.notes where id = 7")
        deleted = await recorder.next_change(2)

    assert inserted["data"].get("record") == {"id": 7, "body": "a", "weight": 2.5}
    assert inserted["data"]["columns"] == [
        {"name": "id", "type": "int8"},
        {"name": "body", "type": "text"},
        {"name": "weight", "type": "numeric"},
    ]
    assert updated["data"].get("record") == {"id": 7, "body": "b", "weight": 2.5}
    assert updated["data"].get("old_record") == {"id": 7}
    assert deleted["data"].get("old_record") == {"id": 7}
    assert "record" not in deleted["data"]


async def test_anon_subscriber_does_not_receive_a_users_rows(
    stack: LocalSupabase, new_user: UserFactory
) -> None:
    """RLS applies per subscriber: anon sees anonymous projects' scenes only, the user sees only theirs."""
    user_id = await new_user()
    users_project, anonymous_project = await _project(stack, user_id), await _project(stack)
    as_anon, as_user = Recorder(), Recorder()
    async with realtime_client(stack, stack.anon_key) as anon, realtime_client(stack, stack.anon_key) as user:
        await user.set_auth(stack.user_token(user_id))
        await subscribe_scenes(anon, as_anon)
        await subscribe_scenes(user, as_user)
        await stack.pool.execute(
            "insert into public.scenes (project_id, heading) values ($1::text::uuid, 'private')",
            users_project,
        )
        await stack.pool.execute(
            "insert into public.scenes (project_id, heading) values ($1::text::uuid, 'public')",
            anonymous_project,
        )
        await as_anon.next_change(0)
        await as_user.next_change(0)
        # The anonymous row was committed last: once it is in, the private one would have been too.
        await stack.pool.execute("update public.scenes set body = 'x' where heading = 'public'")
        await as_anon.next_change(1)

    assert [record_of(change)["heading"] for change in as_anon.changes] == ["public", "public"]
    assert [record_of(change)["heading"] for change in as_user.changes] == ["private"]


async def test_oversized_change_keeps_small_values_and_reports_413(stack: LocalSupabase) -> None:
    """A change above max_record_bytes is still sent, with values of at most 64 bytes and Error 413."""
    stack.realtime.config.poller.max_record_bytes = 2000
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        project_id = await stack.pool.fetchval(
            "insert into public.projects (title, script) values ('big', repeat('x', 5000)) returning id::text"
        )
        change = await recorder.next_change(0)

    data = change["data"]
    assert data["errors"] == ["Error 413: Payload Too Large"]
    record = data.get("record")
    assert record is not None
    assert record["id"] == project_id
    assert record["title"] == "big"
    assert "script" not in record


async def test_supabase_py_client_channel_receives_changes(
    stack: LocalSupabase, make_client: ClientFactory
) -> None:
    """supabase-py's acreate_client(...).channel(...) subscribes and receives an INSERT from the stand-in."""
    client = await make_client(stack.service_key)
    recorder = Recorder()
    channel = client.channel("studio")
    channel.on_postgres_changes(
        RealtimePostgresChangesListenEvent.Insert, recorder.on_change, schema="public", table="projects"
    )
    channel.on_system(recorder.on_system)
    await channel.subscribe(recorder.on_state)
    try:
        await recorder.wait_ready()
        title = f"from-supabase-py-{uuid.uuid4().hex[:6]}"
        await stack.pool.execute("insert into public.projects (title) values ($1)", title)
        change = await recorder.next_change(0)
    finally:
        await client.remove_all_channels()

    assert recorder.states[0] == "SUBSCRIBED"
    assert change["data"]["type"] == "INSERT"
    assert record_of(change)["title"] == title
    # remove_all_channels closes the socket once no channel is left.
    await wait_until(lambda: stack.realtime.socket_count == 0)


async def test_delete_skips_rls_but_shows_only_the_primary_key(
    stack: LocalSupabase, new_user: UserFactory
) -> None:
    """DELETEs are not checked against RLS: anon gets the delete of a user's scene, reduced to its key."""
    users_project = await _project(stack, await new_user())
    scene_id = await stack.pool.fetchval(
        "insert into public.scenes (project_id, heading)"
        " values ($1::text::uuid, 'private') returning id::text",
        users_project,
    )
    recorder = Recorder()
    async with realtime_client(stack, stack.anon_key) as client:
        await subscribe_scenes(client, recorder)
        await stack.pool.execute("delete from public.scenes where id = $1::text::uuid", scene_id)
        deleted = await recorder.next_change(0)

    assert deleted["data"]["type"] == "DELETE"
    assert record_of(deleted, "old_record") == {"id": scene_id}


async def test_unchanged_toasted_value_is_taken_from_the_full_old_row(stack: LocalSupabase) -> None:
    """Under REPLICA IDENTITY FULL an UPDATE's record still holds a large column the update left alone."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        project_id = await stack.pool.fetchval(
            "insert into public.projects (title, script)"
            " select 'toast', string_agg(md5(n::text), '') from generate_series(1, 400) n returning id::text"
        )
        inserted = await recorder.next_change(0)
        await stack.pool.execute(
            "update public.projects set title = 'renamed' where id = $1::text::uuid", project_id
        )
        updated = await recorder.next_change(1)

    script = record_of(inserted)["script"]
    assert len(script) == 400 * 32
    assert record_of(updated)["title"] == "renamed"
    assert record_of(updated)["script"] == script


async def test_server_runs_on_its_own_dsn_and_app(supabase_db: str) -> None:
    """Built from a DSN and mounted on a bare aiohttp app, the server delivers on /socket/websocket too."""
    secret = "a-test-secret-that-is-long-enough-for-hs256"
    config = RealtimeConfig()
    config.poller.idle_interval = 0.02
    server = RealtimeServer(supabase_db, jwt_secret=secret, faults=Faults(), config=config)
    app = web.Application()
    server.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await server.start()
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        recorder = Recorder()
        client = AsyncRealtimeClient(
            f"ws://127.0.0.1:{port}/socket", token=auth.make_key(secret, "service_role")
        )
        try:
            await subscribe_scenes(client, recorder, table="projects")
            conn = await asyncpg.connect(supabase_db)
            try:
                await conn.execute("insert into public.projects (title) values ('own server')")
            finally:
                await conn.close()
            change = await recorder.next_change(0)
        finally:
            await client.close()
        slot = server.slot_name
    finally:
        await server.stop()
        await runner.cleanup()

    assert record_of(change)["title"] == "own server"
    conn = await asyncpg.connect(supabase_db)
    try:
        remaining = await conn.fetchval(
            "select count(*) from pg_replication_slots where slot_name = $1", slot
        )
    finally:
        await conn.close()
    assert remaining == 0
