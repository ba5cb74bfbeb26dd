"""The stand-in's PostgREST subset, driven by supabase-py (postgrest-py 2.34.1) and by raw HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from client_support import ClientFactory, UserFactory
from postgrest import APIError
from postgrest.types import CountMethod, ReturnMethod
from supabase import ClientOptions, create_client

from localsupabase import auth
from localsupabase.app import LocalSupabase

pytestmark = pytest.mark.integration


async def _seed(stack: LocalSupabase, *rows: tuple[str, str | None]) -> dict[str, str]:
    """Insert projects (title, user_id) as superuser and return their ids by title."""
    ids: dict[str, str] = {}
    for title, user_id in rows:
        project_id = await stack.pool.fetchval(
            "insert into public.projects (title, user_id) values ($1, $2::text::uuid) returning id::text",
            title,
            user_id,
        )
        ids[title] = project_id
    return ids


def rows(response: Any) -> list[dict[str, Any]]:
    """Return the rows of a postgrest-py response (its ``data`` is typed as any JSON)."""
    data: list[dict[str, Any]] = response.data
    return data


async def _raw(
    stack: LocalSupabase,
    method: str,
    path: str,
    *,
    key: str | None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send one request to the stand-in without any client library."""
    sent = dict(headers or {})
    if key is not None:
        sent.update({"apikey": key, "Authorization": f"Bearer {key}"})
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        return await http.request(method, path, json=json, headers=sent)


async def test_each_key_sees_the_rows_its_role_may_see(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """The anon key sees anonymous projects, a user token only that user's, the service key all of them."""
    alice, bob = await new_user(), await new_user()
    await _seed(local_supabase, ("anonymous", None), ("alice's", alice), ("bob's", bob))
    anon = await make_client(local_supabase.anon_key)
    as_alice = await make_client(local_supabase.anon_key, token=local_supabase.user_token(alice))
    service = await make_client(local_supabase.service_key)

    seen_by_anon = await anon.table("projects").select("title").execute()
    seen_by_alice = await as_alice.table("projects").select("title, user_id").execute()
    seen_by_service = await service.table("projects").select("title").order("title").execute()

    assert seen_by_anon.data == [{"title": "anonymous"}]
    assert seen_by_alice.data == [{"title": "alice's", "user_id": alice}]
    assert seen_by_service.data == [{"title": "alice's"}, {"title": "anonymous"}, {"title": "bob's"}]


async def test_postgrest_auth_switches_the_role_of_a_client(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """A token given with ``postgrest.auth`` replaces the anon key as the bearer that decides the role."""
    alice = await new_user()
    await _seed(local_supabase, ("anonymous", None), ("alice's", alice))
    client = await make_client(local_supabase.anon_key)
    client.postgrest.auth(local_supabase.user_token(alice))

    seen = await client.table("projects").select("title").execute()

    assert seen.data == [{"title": "alice's"}]


async def test_insert_returns_the_rows_with_database_defaults(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """An insert answers 201 with the stored rows, including defaults such as auth.uid() and version."""
    alice = await new_user()
    client = await make_client(local_supabase.anon_key, token=local_supabase.user_token(alice))

    inserted = await client.table("projects").insert({"title": "mine", "settings": {"fps": 24}}).execute()

    (row,) = rows(inserted)
    assert row["user_id"] == alice
    assert row["version"] == 1
    assert row["settings"] == {"fps": 24}
    assert uuid.UUID(row["id"])
    assert row["created_at"].endswith("+00:00")


async def test_bulk_insert_and_return_minimal(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """A list body inserts every row, and ``returning=ReturnMethod.minimal`` answers without a body."""
    client = await make_client(local_supabase.anon_key)

    minimal = (
        await client.table("projects")
        .insert([{"title": "a"}, {"title": "b"}], returning=ReturnMethod.minimal)
        .execute()
    )

    assert minimal.data == []
    assert (
        await local_supabase.pool.fetchval("select count(*) from public.projects where user_id is null") == 2
    )


async def test_insert_that_violates_rls_raises_api_error(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """Anon writing a user's project and a user writing an anonymous one both fail with SQLSTATE 42501."""
    alice = await new_user()
    anon = await make_client(local_supabase.anon_key)
    as_alice = await make_client(local_supabase.anon_key, token=local_supabase.user_token(alice))

    with pytest.raises(APIError) as by_anon:
        await anon.table("projects").insert({"title": "stolen", "user_id": alice}).execute()
    with pytest.raises(APIError) as by_alice:
        await as_alice.table("projects").insert({"title": "anonymous", "user_id": None}).execute()

    for error in (by_anon.value, by_alice.value):
        assert error.code == "42501"
        assert error.message == 'new row violates row-level security policy for table "projects"'
    assert await local_supabase.pool.fetchval("select count(*) from public.projects") == 0


@pytest.mark.parametrize(("role", "status"), [("anon", 401), ("authenticated", 403)])
async def test_rls_violation_status_depends_on_the_role(
    local_supabase: LocalSupabase, new_user: UserFactory, role: str, status: int
) -> None:
    """PostgREST answers an RLS violation with 401 for anon and 403 for a signed-in user."""
    alice = await new_user()
    owner = alice if role == "anon" else None
    key = local_supabase.anon_key if role == "anon" else local_supabase.user_token(alice)

    response = await _raw(
        local_supabase, "POST", "/rest/v1/projects", key=key, json={"title": "x", "user_id": owner}
    )

    assert response.status_code == status
    assert response.json()["code"] == "42501"


async def test_upsert_merges_on_conflict(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """An upsert on ``id`` updates the existing row (the version trigger fires) instead of adding one."""
    client = await make_client(local_supabase.anon_key)
    ids = await _seed(local_supabase, ("draft", None))

    upserted = (
        await client.table("projects")
        .upsert({"id": ids["draft"], "title": "final"}, on_conflict="id")
        .execute()
    )

    assert [(r["id"], r["title"], r["version"]) for r in rows(upserted)] == [(ids["draft"], "final", 2)]
    assert await local_supabase.pool.fetchval("select count(*) from public.projects") == 1


async def test_upsert_list_and_ignore_duplicates(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """A list upsert inserts the new rows; with ``ignore_duplicates`` the existing rows stay as they were."""
    client = await make_client(local_supabase.service_key)
    ids = await _seed(local_supabase, ("old", None))
    new_id = str(uuid.uuid4())

    await (
        client.table("projects")
        .upsert(
            [{"id": ids["old"], "title": "ignored"}, {"id": new_id, "title": "new"}], ignore_duplicates=True
        )
        .execute()
    )

    rows = await local_supabase.pool.fetch("select id::text, title from public.projects order by title")
    assert [(r["id"], r["title"]) for r in rows] == [(new_id, "new"), (ids["old"], "old")]


async def test_update_touches_only_rows_visible_to_the_role(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """An update by anon of a user's project changes nothing and returns no rows; its own rows change."""
    alice = await new_user()
    ids = await _seed(local_supabase, ("anonymous", None), ("alice's", alice))
    anon = await make_client(local_supabase.anon_key)

    blocked = await anon.table("projects").update({"title": "hijacked"}).eq("id", ids["alice's"]).execute()
    allowed = await anon.table("projects").update({"status": "ready"}).eq("id", ids["anonymous"]).execute()

    assert blocked.data == []
    assert [(r["status"], r["version"]) for r in rows(allowed)] == [("ready", 2)]
    titles = await local_supabase.pool.fetch("select title from public.projects order by title")
    assert [r["title"] for r in titles] == ["alice's", "anonymous"]


async def test_delete_returns_the_deleted_rows(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """A filtered delete answers with the rows it removed; a delete without any filter is refused."""
    client = await make_client(local_supabase.service_key)
    ids = await _seed(local_supabase, ("keep", None), ("drop", None))

    deleted = await client.table("projects").delete().eq("id", ids["drop"]).execute()
    with pytest.raises(APIError) as unfiltered:
        await client.table("projects").delete().execute()

    assert [r["title"] for r in rows(deleted)] == ["drop"]
    assert unfiltered.value.code == "21000"
    assert await local_supabase.pool.fetchval("select count(*) from public.projects") == 1


async def test_filters_order_limit_and_count(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """eq, neq, gt, gte, lt, lte, is, in, like, ilike, not, order, limit, offset and count work together."""
    client = await make_client(local_supabase.service_key)
    ids = await _seed(local_supabase, *((f"p{i}", None) for i in range(5)), ("odd, name", None))
    project = ids["p0"]
    for index in range(5):
        await local_supabase.pool.execute(
            "insert into public.scenes (project_id, scene_index, heading) values ($1::uuid, $2, $3)",
            project,
            index,
            "Intro" if index == 0 else f"scene {index}",
        )
    scenes = client.table("scenes")

    def indexes(response: Any) -> list[int]:
        return [row["scene_index"] for row in rows(response)]

    assert indexes(await scenes.select("scene_index").eq("scene_index", 2).execute()) == [2]
    assert indexes(
        await scenes.select("scene_index").neq("scene_index", 2).order("scene_index").execute()
    ) == [
        0,
        1,
        3,
        4,
    ]
    ranged = scenes.select("scene_index").gt("scene_index", 0).lte("scene_index", 3).order("scene_index")
    assert indexes(await ranged.execute()) == [1, 2, 3]
    assert indexes(
        await scenes.select("scene_index").gte("scene_index", 3).lt("scene_index", 4).execute()
    ) == [3]
    assert indexes(
        await scenes.select("scene_index").in_("scene_index", [1, 4]).order("scene_index").execute()
    ) == [
        1,
        4,
    ]
    assert indexes(
        await scenes.select("scene_index").is_("voice_id", None).eq("scene_index", 0).execute()
    ) == [0]
    assert indexes(await scenes.select("scene_index").like("heading", "Int*").execute()) == [0]
    assert indexes(await scenes.select("scene_index").ilike("heading", "int*").execute()) == [0]
    negated = scenes.select("scene_index").not_.in_("scene_index", [0, 1, 2]).order("scene_index", desc=True)
    assert indexes(await negated.execute()) == [4, 3]
    paged = (
        await scenes.select("scene_index", count=CountMethod.exact).order("scene_index").range(1, 2).execute()
    )
    assert (indexes(paged), paged.count) == ([1, 2], 5)
    limited = await scenes.select("scene_index").order("scene_index", desc=True).limit(2).offset(1).execute()
    assert indexes(limited) == [3, 2]
    quoted = (
        await client.table("projects")
        .select("title")
        .in_("title", ["odd, name", "p1"])
        .order("title")
        .execute()
    )
    assert [row["title"] for row in rows(quoted)] == ["odd, name", "p1"]


async def test_order_by_several_columns_with_nulls(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """Several order terms apply in turn, and nullsfirst puts NULLs ahead."""
    client = await make_client(local_supabase.service_key)
    project = (await _seed(local_supabase, ("p", None)))["p"]
    for order_index, trim_end in [(2, None), (1, 5.0), (1, None), (2, 1.0)]:
        await local_supabase.pool.execute(
            "insert into public.clips (project_id, order_index, trim_end) values ($1::uuid, $2, $3)",
            project,
            order_index,
            trim_end,
        )

    ordered = (
        await client.table("clips")
        .select("order_index, trim_end")
        .order("order_index", desc=True)
        .order("trim_end", nullsfirst=True)
        .execute()
    )

    assert [(r["order_index"], r["trim_end"]) for r in rows(ordered)] == [
        (2, None),
        (2, 1.0),
        (1, None),
        (1, 5.0),
    ]


async def test_single_object_requests(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """``single()`` returns one object, fails with PGRST116 otherwise; ``maybe_single()`` allows none."""
    client = await make_client(local_supabase.service_key)
    ids = await _seed(local_supabase, ("a", None), ("b", None))

    one = await client.table("projects").select("title").eq("id", ids["a"]).single().execute()
    with pytest.raises(APIError) as several:
        await client.table("projects").select("title").single().execute()
    none = await client.table("projects").select("title").eq("title", "zzz").maybe_single().execute()

    assert one.data == {"title": "a"}
    assert several.value.code == "PGRST116"
    assert several.value.details == "The result contains 2 rows"
    assert none is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/rest/v1/no_such_table?select=*", None, 404, "PGRST205"),
        ("GET", "/rest/v1/projects?select=nope", None, 400, "42703"),
        ("GET", "/rest/v1/projects?nope=eq.1", None, 400, "42703"),
        ("GET", "/rest/v1/projects?id=eq.not-a-uuid", None, 400, "22P02"),
        ("GET", "/rest/v1/projects?id=near.1", None, 400, "PGRST100"),
        ("POST", "/rest/v1/projects", {"status": "bogus"}, 400, "23514"),
        ("POST", "/rest/v1/projects", {"nope": 1}, 400, "PGRST204"),
        ("POST", "/rest/v1/scenes", {"project_id": "00000000-0000-0000-0000-000000000000"}, 409, "23503"),
        ("PATCH", "/rest/v1/projects", {"title": "all"}, 400, "21000"),
        ("POST", "/rest/v1/rpc/no_such_function", {"x": 1}, 404, "PGRST202"),
    ],
)
async def test_errors_carry_postgrest_codes_and_statuses(
    local_supabase: LocalSupabase, method: str, path: str, body: Any, status: int, code: str
) -> None:
    """Each failure answers PostgREST's status and a JSON error with code, details, hint and message."""
    response = await _raw(local_supabase, method, path, key=local_supabase.service_key, json=body)

    assert response.status_code == status
    error = response.json()
    assert set(error) == {"code", "details", "hint", "message"}
    assert error["code"] == code


async def test_duplicate_key_is_a_409_with_details(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """Inserting an existing primary key raises APIError 23505 with PostgreSQL's detail text."""
    client = await make_client(local_supabase.service_key)
    ids = await _seed(local_supabase, ("a", None))

    with pytest.raises(APIError) as duplicate:
        await client.table("projects").insert({"id": ids["a"]}).execute()
    response = await _raw(
        local_supabase, "POST", "/rest/v1/projects", key=local_supabase.service_key, json={"id": ids["a"]}
    )

    assert duplicate.value.code == "23505"
    assert duplicate.value.details == f"Key (id)=({ids['a']}) already exists."
    assert response.status_code == 409


async def test_client_strings_never_reach_sql_as_code(local_supabase: LocalSupabase) -> None:
    """Hostile table names, column names and values are refused or treated as plain data."""
    await _seed(local_supabase, ("safe", None))
    key = local_supabase.service_key

    bad_table = await _raw(local_supabase, "GET", '/rest/v1/projects";drop table projects;--', key=key)
    bad_column = await _raw(local_supabase, "GET", '/rest/v1/projects?select=title,"x";drop', key=key)
    bad_value = await _raw(
        local_supabase, "GET", "/rest/v1/projects?title=eq.';drop table projects;--", key=key
    )
    bad_order = await _raw(local_supabase, "GET", "/rest/v1/projects?order=title;drop", key=key)

    assert bad_table.status_code == 404
    assert bad_column.status_code in (400, 404)
    assert (bad_value.status_code, bad_value.json()) == (200, [])
    assert bad_order.status_code == 400
    assert await local_supabase.pool.fetchval("select count(*) from public.projects") == 1


async def test_rpc_calls_functions_as_the_role(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """rpc runs functions as the caller: a scalar comes back as the value, setof as a list, jsonb as JSON."""
    alice = await new_user()
    await _seed(local_supabase, ("anonymous", None), ("alice's", alice))
    await local_supabase.pool.execute(
        """
        create function public.project_count() returns bigint language sql stable
          as $$ select count(*) from public.projects $$;
        create function public.add(a integer, b integer default 10) returns integer language sql
          as $$ select a + b $$;
        create function public.titles_like(pattern text) returns setof public.projects language sql stable
          as $$ select * from public.projects where title like pattern order by title $$;
        create function public.echo(doc jsonb) returns jsonb language sql as $$ select doc $$;
        create function public.forget() returns void language sql as $$ $$;
        """
    )
    anon = await make_client(local_supabase.anon_key)
    service = await make_client(local_supabase.service_key)

    assert (await anon.rpc("project_count", {}).execute()).data == 1
    assert (await service.rpc("project_count", {}).execute()).data == 2
    assert (await anon.rpc("add", {"a": 1, "b": 2}).execute()).data == 3
    assert (await anon.rpc("add", {"a": 1}).execute()).data == 11
    assert (await anon.rpc("add", {"a": 5}, get=True).execute()).data == 15
    assert [r["title"] for r in rows(await service.rpc("titles_like", {"pattern": "a%"}).execute())] == [
        "alice's",
        "anonymous",
    ]
    assert (await anon.rpc("echo", {"doc": {"nested": [1, None]}}).execute()).data == {"nested": [1, None]}
    assert (await anon.rpc("forget", {}).execute()).data == []
    with pytest.raises(APIError) as missing:
        await anon.rpc("add", {"c": 1}).execute()
    assert missing.value.code == "PGRST202"


async def test_rpc_respects_execute_grants(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """A function only service_role may execute fails for anon with 42501 and works with the service key."""
    await local_supabase.pool.execute(
        """
        create function public.secret_answer() returns integer language sql as $$ select 42 $$;
        revoke execute on function public.secret_answer() from public, anon, authenticated;
        """
    )
    anon = await make_client(local_supabase.anon_key)
    service = await make_client(local_supabase.service_key)

    with pytest.raises(APIError) as refused:
        await anon.rpc("secret_answer", {}).execute()

    assert refused.value.code == "42501"
    assert (await service.rpc("secret_answer", {}).execute()).data == 42


async def test_missing_or_bad_keys_are_401(local_supabase: LocalSupabase) -> None:
    """No key, a key signed with another secret and an expired token are all refused with 401."""
    foreign = auth.make_key("a different secret of the same length as ours", "service_role")
    expired = auth.sign(local_supabase.jwt_secret, {"role": "anon", "exp": int(time.time()) - 10})

    missing = await _raw(local_supabase, "GET", "/rest/v1/projects", key=None)
    forged = await _raw(local_supabase, "GET", "/rest/v1/projects", key=foreign)
    stale = await _raw(local_supabase, "GET", "/rest/v1/projects", key=expired)

    assert [r.status_code for r in (missing, forged, stale)] == [401, 401, 401]
    assert forged.json()["code"] == "PGRST301"
    assert stale.json()["code"] == "PGRST303"
    assert "secret" not in forged.text


async def test_rest_unavailable_fault_answers_503(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """While ``faults.rest_unavailable`` is set every REST call fails with 503; afterwards it works again."""
    client = await make_client(local_supabase.anon_key)
    local_supabase.faults.rest_unavailable = True

    with pytest.raises(APIError) as failed:
        await client.table("projects").insert({"title": "lost"}).execute()
    response = await _raw(local_supabase, "GET", "/rest/v1/projects", key=local_supabase.anon_key)
    local_supabase.faults.rest_unavailable = False
    recovered = await client.table("projects").insert({"title": "kept"}).execute()

    assert failed.value.code == "PGRST001"
    assert response.status_code == 503
    assert [r["title"] for r in rows(recovered)] == ["kept"]


async def test_sync_client_round_trip(local_supabase: LocalSupabase) -> None:
    """The synchronous supabase-py client inserts, reads and deletes through the stand-in too."""

    def round_trip() -> tuple[list[Any], list[Any], list[Any]]:
        with httpx.Client(timeout=10) as http:
            options = ClientOptions(httpx_client=http)
            client = create_client(local_supabase.url, local_supabase.anon_key, options)
            inserted = client.table("projects").insert({"title": "sync"}).execute()
            read = client.table("projects").select("title").execute()
            deleted = client.table("projects").delete().eq("title", "sync").execute()
            return inserted.data, read.data, deleted.data

    # The stand-in runs on this event loop, so the blocking client must run on another thread.
    inserted, read, deleted = await asyncio.to_thread(round_trip)

    assert [r["title"] for r in inserted] == ["sync"]
    assert read == [{"title": "sync"}]
    assert [r["title"] for r in deleted] == ["sync"]


async def test_head_request_counts_without_a_body(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """``select(head=True, count="exact")`` returns the count from Content-Range and no rows."""
    client = await make_client(local_supabase.anon_key)
    await _seed(local_supabase, ("a", None), ("b", None), ("c", None))

    counted = await client.table("projects").select("*", count=CountMethod.exact, head=True).execute()

    assert (counted.data, counted.count) == ([], 3)


async def test_only_the_public_schema_is_exposed(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """Asking for another schema (Accept-Profile) fails with PGRST106, as on a default Supabase project."""
    client = await make_client(local_supabase.service_key)

    with pytest.raises(APIError) as refused:
        await client.schema("auth").table("users").select("*").execute()

    assert refused.value.code == "PGRST106"
