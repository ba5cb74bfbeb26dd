"""Tests of ``syncd_apply``, ``syncd_mutations`` and ``syncd_applied_mids`` (supabase/migrations/
20261126000004_syncd_apply.sql, 20261201000001_syncd_mutations_by_project.sql that keys the mutations
by project, and 20261202000001_syncd_mutations_high_water.sql that keeps each client's highest mid).

The apply rule itself is tested by the cases of tests/adapters/apply_conformance.py, which run here
against both ``syncd_apply`` and the embedded store. The tests after them cover what only PostgreSQL
has: roles and grants, RLS, the exact JSON of the answer, validation errors and concurrency.
"""

# Table names in the SQL of this file come from the tests' own constants, never from input.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from syncd.adapters.local import LocalBackend
from syncd.core.schema import EDITABLE_FIELDS, TABLES
from tests.adapters.apply_conformance import (
    CASES,
    ApplyRefused,
    ApplyTarget,
    Case,
    LocalTarget,
    PostgresTarget,
    batch,
    delete,
    insert,
    new_id,
    update,
)
from tests.support.postgres import (
    BOOTSTRAP_SQL,
    MIGRATIONS_DIR,
    PostgresServer,
    unique_database_name,
)

integration = pytest.mark.integration

SERVICE_CLAIMS = json.dumps({"role": "service_role"})

BY_PROJECT = MIGRATIONS_DIR / "20261201000001_syncd_mutations_by_project.sql"
"""The migration that keys ``syncd_mutations`` by (project_id, client_id, mid)."""

HIGH_WATER = MIGRATIONS_DIR / "20261202000001_syncd_mutations_high_water.sql"
"""The migration that keeps one row per (project_id, client_id), its highest applied mid."""


@pytest.fixture
async def db(supabase_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to a fresh database of this test alone."""
    conn = await asyncpg.connect(supabase_db)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(params=[pytest.param("postgres", marks=integration), "local"])
async def apply_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApplyTarget]:
    """Each implementation of the apply rule: ``syncd_apply`` in PostgreSQL, and the embedded store."""
    if request.param == "postgres":
        # Only the postgres side needs a database; the local side must not start one.
        dsn: str = request.getfixturevalue("supabase_db")
        conn = await asyncpg.connect(dsn)
        try:
            yield PostgresTarget(conn)
        finally:
            await conn.close()
    else:
        path = tmp_path / "store.db"
        async with LocalBackend(path) as store:
            yield LocalTarget(store, path)


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
async def test_conformance(case: Case, apply_target: ApplyTarget) -> None:
    """Both implementations pass every case of the shared apply-rule suite."""
    async with asyncio.timeout(30):
        await case(apply_target)


# PostgreSQL only -----------------------------------------------------------------------------------


async def run_as(conn: asyncpg.Connection, role: str, sql: str, *args: Any) -> Any:
    """Run one statement as ``role`` in a transaction of its own and return its first value."""
    async with conn.transaction():
        await conn.execute(f"set local role {role}")
        return await conn.fetchval(sql, *args)


async def call_as(conn: asyncpg.Connection, role: str, body: Any) -> dict[str, Any]:
    """Call ``syncd_apply`` as ``role`` in a transaction of its own and return the decoded answer."""
    answer = await run_as(conn, role, "select public.syncd_apply($1::jsonb)::text", json.dumps(body))
    decoded: dict[str, Any] = json.loads(answer)
    return decoded


async def new_project(conn: asyncpg.Connection) -> str:
    """Insert a project as the superuser and return its id."""
    return str(await conn.fetchval("insert into public.projects default values returning id::text"))


async def version_of(conn: asyncpg.Connection, table: str, row_id: str) -> int:
    """Return the version of a row of a synced table (``table`` comes from the tests, never from input)."""
    found = await conn.fetchval(f"select version from public.{table} where id = $1::uuid", row_id)
    return int(found)


@integration
@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_editor_roles_cannot_execute(db: asyncpg.Connection, role: str) -> None:
    """anon and authenticated get permission denied (42501) on syncd_apply and the project is unchanged."""
    p = await new_project(db)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await call_as(db, role, batch(p, [update("projects", p, title=("x", ("c", 1)))]))
    assert await db.fetchval("select title from public.projects where id = $1::uuid", p) == "Untitled project"
    assert await db.fetchval("select count(*) from public.syncd_mutations") == 0


@integration
async def test_service_role_can_execute(db: asyncpg.Connection) -> None:
    """service_role runs syncd_apply, which writes the row and records the mutation."""
    p = await new_project(db)
    answer = await call_as(db, "service_role", batch(p, [update("projects", p, title=("x", ("c", 1)))]))
    assert answer["rows"][0]["row"]["title"] == "x"
    assert (
        await db.fetchval("select count(*) from public.syncd_mutations where project_id = $1::uuid", p) == 1
    )


@integration
async def test_execute_grants_are_service_role_only(db: asyncpg.Connection) -> None:
    """Of the API roles and PUBLIC, only service_role holds EXECUTE on syncd_apply."""
    rows = await db.fetch(
        "select r.rolname, has_function_privilege(r.rolname, 'public.syncd_apply(jsonb)', 'execute') as ok"
        " from pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
    )
    assert {r["rolname"]: r["ok"] for r in rows} == {
        "anon": False,
        "authenticated": False,
        "service_role": True,
        # PostgREST logs in as authenticator and switches role; it must not run the function as itself.
        "authenticator": False,
    }


@integration
async def test_function_is_invoker_with_empty_search_path(db: asyncpg.Connection) -> None:
    """syncd_apply runs with the caller's rights and an empty search_path, so no object can be shadowed."""
    found = await db.fetchrow(
        "select prosecdef, proconfig, provolatile::text from pg_proc"
        " where oid = 'public.syncd_apply(jsonb)'::regprocedure"
    )
    assert found is not None
    assert found["prosecdef"] is False
    assert found["proconfig"] == ['search_path=""']
    assert found["provolatile"] == "v"


@integration
async def test_mutations_table_has_rls_without_policies(db: asyncpg.Connection) -> None:
    """syncd_mutations has RLS enabled, no policy, and one index: its key, one row per project and client."""
    assert await db.fetchval(
        "select relrowsecurity from pg_class where oid = 'public.syncd_mutations'::regclass"
    )
    assert await db.fetchval("select count(*) from pg_policies where tablename = 'syncd_mutations'") == 0
    indexes = await db.fetch(
        "select pg_get_indexdef(indexrelid) as def from pg_index"
        " where indrelid = 'public.syncd_mutations'::regclass"
    )
    assert [r["def"] for r in indexes] == [
        "CREATE UNIQUE INDEX syncd_mutations_pkey ON public.syncd_mutations"
        " USING btree (project_id, client_id)"
    ]


@integration
@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_editor_roles_cannot_read_applied_mids(db: asyncpg.Connection, role: str) -> None:
    """syncd_applied_mids is for service_role only: it names every editor's client id of a project."""
    p = await new_project(db)
    await call_as(db, "service_role", batch(p, [], [("c", 4)]))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run_as(db, role, "select public.syncd_applied_mids($1::uuid)", p)
    answer = await run_as(db, "service_role", "select public.syncd_applied_mids($1::uuid)::text", p)
    assert json.loads(answer) == {"c": 4}
    found = await db.fetchrow(
        "select prosecdef, proconfig, provolatile::text from pg_proc"
        " where oid = 'public.syncd_applied_mids(uuid)'::regprocedure"
    )
    assert found is not None
    assert (found["prosecdef"], found["proconfig"], found["provolatile"]) == (False, ['search_path=""'], "s")


@integration
@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_editor_roles_see_and_write_no_mutations(db: asyncpg.Connection, role: str) -> None:
    """anon and authenticated read no row of syncd_mutations and cannot insert, update or delete one."""
    p = await new_project(db)
    await call_as(db, "service_role", batch(p, [], [("c", 1), ("c", 2)]))
    claims = json.dumps({"role": role, "sub": new_id()} if role == "authenticated" else {"role": role})
    async with db.transaction():
        await db.execute("select set_config('request.jwt.claims', $1, true)", claims)
        await db.execute(f"set local role {role}")
        assert await db.fetchval("select count(*) from public.syncd_mutations") == 0
        assert await db.execute("update public.syncd_mutations set mid = mid + 10") == "UPDATE 0"
        assert await db.execute("delete from public.syncd_mutations") == "DELETE 0"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run_as(db, role, "insert into public.syncd_mutations values ('d', 3, $1::uuid)", p)
    assert await db.fetchval("select mid from public.syncd_mutations") == 2


@integration
async def test_answer_rows_are_what_to_jsonb_gives(db: asyncpg.Connection) -> None:
    """Every answered row, timestamps included, equals ``to_jsonb`` of the row as stored."""
    p = await new_project(db)
    s, clip = new_id(), new_id()
    answer = await call_as(
        db,
        "service_role",
        batch(
            p,
            [
                insert("scenes", s, ("c", 1), heading="Dawn", duration=1.5),
                insert("clips", clip, ("c", 2), scene_id=s, metadata={"a": [1, 2.5, None]}, trim_end=0.1),
                update("projects", p, settings=({"fps": 24}, ("c", 3)), script=("long " * 2000, ("c", 4))),
            ],
        ),
    )
    assert len(answer["rows"]) == 3
    for item in answer["rows"]:
        stored = await db.fetchval(
            f"select to_jsonb(t)::text from public.{item['table']} t where id = $1::uuid",
            item["row"]["id"],
        )
        assert item["row"] == json.loads(stored)
    assert answer["missing"] == []


@integration
async def test_missing_ids_are_echoed_as_sent(db: asyncpg.Connection) -> None:
    """A missing row is reported with the id spelled as the batch spelled it."""
    p = await new_project(db)
    upper = new_id().upper()
    answer = await call_as(db, "service_role", batch(p, [delete("clips", upper, ("c", 1))]))
    assert answer == {"rows": [], "missing": [{"table": "clips", "id": upper}]}


@integration
async def test_editable_columns_match_the_core(db: asyncpg.Connection) -> None:
    """syncd_apply lets a batch update exactly the columns that the core's EDITABLE_FIELDS names."""
    p = await new_project(db)
    s, clip = new_id(), new_id()
    await call_as(
        db, "service_role", batch(p, [insert("scenes", s, ("c", 1)), insert("clips", clip, ("c", 2))])
    )
    ids = {"projects": p, "scenes": s, "clips": clip}
    mid = 10
    for table in TABLES:
        current = json.loads(
            await db.fetchval(
                f"select to_jsonb(t)::text from public.{table} t where id = $1::uuid", ids[table]
            )
        )
        for column, value in current.items():
            mid += 1
            body = batch(p, [update(table, ids[table], **{column: (value, ("c", mid))})])
            if column in EDITABLE_FIELDS[table]:
                await call_as(db, "service_role", body)
            else:
                with pytest.raises(asyncpg.InvalidParameterValueError, match=f"{table}.{column}"):
                    await call_as(db, "service_role", body)
        assert set(EDITABLE_FIELDS[table]) <= set(current)


MALFORMED: list[tuple[str, Any]] = [
    ("not an object", []),
    ("no project", {"ops": [], "mutations": []}),
    ("project not a uuid", {"project_id": "p-1", "ops": [], "mutations": []}),
    ("ops not a list", {"project_id": "P", "ops": {}, "mutations": []}),
    ("no mutations", {"project_id": "P", "ops": []}),
    ("mutation not a pair", {"project_id": "P", "ops": [], "mutations": [["c"]]}),
    ("mid not an integer", {"project_id": "P", "ops": [], "mutations": [["c", 1.5]]}),
    ("mid a string", {"project_id": "P", "ops": [], "mutations": [["c", "1"]]}),
    ("client not a string", {"project_id": "P", "ops": [], "mutations": [[1, 1]]}),
    ("op not an object", {"project_id": "P", "ops": [1], "mutations": []}),
    (
        "unknown op",
        {"project_id": "P", "ops": [{"op": "upsert", "table": "scenes", "id": "S"}], "mutations": []},
    ),
    ("no table", {"project_id": "P", "ops": [{"op": "delete", "id": "S", "by": ["c", 1]}], "mutations": []}),
    (
        "id not a uuid",
        {
            "project_id": "P",
            "ops": [{"op": "delete", "table": "scenes", "id": "s-1", "by": ["c", 1]}],
            "mutations": [],
        },
    ),
    (
        "delete without by",
        {"project_id": "P", "ops": [{"op": "delete", "table": "scenes", "id": "S"}], "mutations": []},
    ),
    (
        "insert without row",
        {
            "project_id": "P",
            "ops": [{"op": "insert", "table": "scenes", "id": "S", "by": ["c", 1]}],
            "mutations": [],
        },
    ),
    (
        "set not an object",
        {
            "project_id": "P",
            "ops": [{"op": "update", "table": "scenes", "id": "S", "set": []}],
            "mutations": [],
        },
    ),
    (
        "field without by",
        {
            "project_id": "P",
            "ops": [{"op": "update", "table": "scenes", "id": "S", "set": {"body": {"value": "x"}}}],
            "mutations": [],
        },
    ),
    (
        "field without value",
        {
            "project_id": "P",
            "ops": [{"op": "update", "table": "scenes", "id": "S", "set": {"body": {"by": ["c", 1]}}}],
            "mutations": [],
        },
    ),
]


@integration
@pytest.mark.parametrize(("what", "body"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_batches_are_refused_as_invalid_parameter(
    db: asyncpg.Connection, what: str, body: Any
) -> None:
    """A malformed batch fails with SQLSTATE 22023 (a 4xx from PostgREST) and a message naming syncd_apply."""
    p, s = await new_project(db), new_id()
    text = json.dumps(body).replace('"P"', json.dumps(p)).replace('"S"', json.dumps(s))
    with pytest.raises(asyncpg.InvalidParameterValueError, match="syncd_apply"):
        await run_as(db, "service_role", "select public.syncd_apply($1::jsonb)", text)


@integration
async def test_sql_null_batch_is_refused(db: asyncpg.Connection) -> None:
    """A SQL NULL batch fails with 22023 instead of answering nothing."""
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await run_as(db, "service_role", "select public.syncd_apply(null)")


@integration
async def test_deleting_a_project_drops_its_mutations(db: asyncpg.Connection) -> None:
    """The mutations of a deleted project go with it (on delete cascade), others stay."""
    p, other = await new_project(db), await new_project(db)
    await call_as(db, "service_role", batch(p, [], [("c", 1)]))
    await call_as(db, "service_role", batch(other, [], [("c", 2)]))
    await db.execute("delete from public.projects where id = $1::uuid", p)
    assert [r["mid"] for r in await db.fetch("select mid from public.syncd_mutations")] == [2]


async def connect_many(dsn: str, count: int) -> list[asyncpg.Connection]:
    """Open ``count`` connections to ``dsn``."""
    return [await asyncpg.connect(dsn) for _ in range(count)]


async def wait_until_blocked(conn: asyncpg.Connection, pids: list[int]) -> None:
    """Return once every backend in ``pids`` waits for a lock."""
    while True:
        waiting = await conn.fetchval(
            "select count(*) from pg_stat_activity where pid = any($1::int[]) and wait_event_type = 'Lock'",
            pids,
        )
        if waiting == len(pids):
            return
        await asyncio.sleep(0.01)


@integration
async def test_racing_attempts_of_one_batch_apply_it_once(supabase_db: str, db: asyncpg.Connection) -> None:
    """Two attempts of the same batch that run at the same time apply it once: one version step."""
    p = await new_project(db)
    s = new_id()
    await call_as(db, "service_role", batch(p, [insert("scenes", s, ("c", 1))]))
    flush = batch(p, [update("scenes", s, heading=("h", ("c", 2)), body=("b", ("c", 3)))])
    first, second = await connect_many(supabase_db, 2)
    try:
        async with asyncio.timeout(20):
            # A row lock held elsewhere makes both attempts start before either can finish.
            async with db.transaction():
                await db.execute("select from public.scenes where id = $1::uuid for update", s)
                calls = asyncio.gather(
                    call_as(first, "service_role", flush), call_as(second, "service_role", flush)
                )
                await wait_until_blocked(db, [first.get_server_pid(), second.get_server_pid()])
            answers = await calls
    finally:
        await first.close()
        await second.close()
    assert [a["rows"][0]["row"]["version"] for a in answers] == [2, 2]
    assert [a["rows"][0]["row"]["heading"] for a in answers] == ["h", "h"]
    assert await version_of(db, "scenes", s) == 2


@integration
async def test_concurrent_batches_of_one_project_both_apply(supabase_db: str, db: asyncpg.Connection) -> None:
    """Two different batches of one project that run at the same time both apply, one after the other."""
    p = await new_project(db)
    s = new_id()
    await call_as(db, "service_role", batch(p, [insert("scenes", s, ("c", 1))]))
    one = batch(
        p, [update("scenes", s, heading=("h", ("c", 2))), update("projects", p, title=("t", ("c", 3)))]
    )
    two = batch(p, [update("scenes", s, body=("b", ("d", 1))), update("projects", p, script=("s", ("d", 2)))])
    first, second = await connect_many(supabase_db, 2)
    try:
        async with asyncio.timeout(20):
            answers = await asyncio.gather(
                call_as(first, "service_role", one), call_as(second, "service_role", two)
            )
    finally:
        await first.close()
        await second.close()
    scene_versions = sorted(r["row"]["version"] for a in answers for r in a["rows"] if r["table"] == "scenes")
    assert scene_versions == [2, 3]
    row = await db.fetchrow("select heading, body, version from public.scenes where id = $1::uuid", s)
    assert (row["heading"], row["body"], row["version"]) == ("h", "b", 3)
    project = await db.fetchrow("select title, script, version from public.projects where id = $1::uuid", p)
    assert (project["title"], project["script"], project["version"]) == ("t", "s", 3)


@integration
async def test_refused_batch_reports_the_sqlstate(db: asyncpg.Connection) -> None:
    """A broken check constraint surfaces as its own SQLSTATE (23514), which PostgREST answers with a 4xx."""
    p = await new_project(db)
    target = PostgresTarget(db)
    with pytest.raises(ApplyRefused) as caught:
        await target.apply(batch(p, [update("projects", p, status=("bogus", ("c", 1)))]))
    assert caught.value.sqlstate == "23514"


@asynccontextmanager
async def database_before(
    pg_server: PostgresServer, migration: Path
) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A fresh database with every migration before ``migration``: its name and a superuser connection."""
    name = unique_database_name()
    pg_server.create_database(name)
    try:
        before = [f for f in sorted(MIGRATIONS_DIR.glob("*.sql")) if f.name < migration.name]
        pg_server.psql_files(name, [BOOTSTRAP_SQL, *before])
        conn = await asyncpg.connect(pg_server.dsn(name))
        try:
            yield name, conn
        finally:
            await conn.close()
    finally:
        pg_server.drop_database(name)


@integration
async def test_the_migration_to_per_project_mutations_keeps_every_record(pg_server: PostgresServer) -> None:
    """The migration to per-project keys on a database with recorded mutations keeps every row."""
    async with database_before(pg_server, BY_PROJECT) as (name, conn):
        p = await new_project(conn)
        await call_as(conn, "service_role", batch(p, [], [("c", 1), ("c", 7)]))
        pg_server.psql(name, BY_PROJECT)
        q = await new_project(conn)
        # The same (client_id, mid) in another project is now recorded, and applied, on its own.
        s = new_id()
        await call_as(conn, "service_role", batch(q, [insert("scenes", s, ("c", 7))]))
        found = await conn.fetch("select project_id::text, client_id, mid from public.syncd_mutations")
        assert sorted(tuple(r) for r in found) == sorted([(p, "c", 1), (p, "c", 7), (q, "c", 7)])
        assert await conn.fetchval("select count(*) from public.scenes where id = $1::uuid", s) == 1
        key = await conn.fetchval(
            "select pg_get_constraintdef(oid) from pg_constraint where conname = 'syncd_mutations_pkey'"
        )
        assert key == "PRIMARY KEY (project_id, client_id, mid)"


async def applied_mids(conn: asyncpg.Connection, project_id: str) -> dict[str, int]:
    """Call ``syncd_applied_mids`` as ``service_role``."""
    answer = await run_as(
        conn, "service_role", "select public.syncd_applied_mids($1::uuid)::text", project_id
    )
    decoded: dict[str, int] = json.loads(answer)
    return decoded


@integration
async def test_the_migration_to_highest_mids_keeps_what_counts_as_applied(pg_server: PostgresServer) -> None:
    """On a database holding a row per mutation, the migration keeps each client's highest mid only, and
    every mutation applied before it still counts as applied after it."""
    async with database_before(pg_server, HIGH_WATER) as (name, conn):
        p, q = await new_project(conn), await new_project(conn)
        s = new_id()
        await call_as(conn, "service_role", batch(p, [insert("scenes", s, ("c", 2), heading="kept")]))
        await call_as(conn, "service_role", batch(p, [], [("c", 5), ("d", 1), ("c", 3)]))
        await call_as(conn, "service_role", batch(q, [], [("c", 1)]))
        applied = [await applied_mids(conn, x) for x in (p, q)]
        assert await conn.fetchval("select count(*) from public.syncd_mutations") == 5
        pg_server.psql(name, HIGH_WATER)
        found = await conn.fetch("select project_id::text, client_id, mid from public.syncd_mutations")
        assert sorted(tuple(r) for r in found) == sorted([(p, "c", 5), (p, "d", 1), (q, "c", 1)])
        assert [await applied_mids(conn, x) for x in (p, q)] == applied == [{"c": 5, "d": 1}, {"c": 1}]
        # c's mid 2, whose row the migration dropped, is still applied: its replay changes nothing.
        await call_as(conn, "service_role", batch(p, [update("scenes", s, heading=("replayed", ("c", 2)))]))
        assert await conn.fetchval("select heading from public.scenes where id = $1::uuid", s) == "kept"
        await call_as(conn, "service_role", batch(p, [update("scenes", s, heading=("new", ("c", 6)))]))
        assert await conn.fetchval("select heading from public.scenes where id = $1::uuid", s) == "new"


async def test_stale_owner_is_refused_with_its_own_sqlstate(db: asyncpg.Connection) -> None:
    """A fence below the highest fails with SQLSTATE SYF01, which the Supabase adapter makes a StaleOwner."""
    p = await new_project(db)
    target = PostgresTarget(db)
    await target.apply({**batch(p, []), "fence": 4})
    with pytest.raises(ApplyRefused, match="stale owner: fence 3 is below 4") as caught:
        await target.apply({**batch(p, []), "fence": 3})
    assert caught.value.sqlstate == "SYF01"
    assert await db.fetchval("select token from public.syncd_fences where project_id = $1::uuid", p) == 4


@integration
async def test_fences_table_is_closed_to_editors_and_goes_with_its_project(db: asyncpg.Connection) -> None:
    """syncd_fences has RLS without policies, editors' roles cannot run the unfenced apply, and a deleted
    project's fence goes with it."""
    p = await new_project(db)
    await call_as(db, "service_role", {**batch(p, []), "fence": 9})
    assert await db.fetchval(
        "select relrowsecurity from pg_class where oid = 'public.syncd_fences'::regclass"
    )
    assert await db.fetchval("select count(*) from pg_policies where tablename = 'syncd_fences'") == 0
    for role in ("anon", "authenticated"):
        assert await run_as(db, role, "select count(*) from public.syncd_fences") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await call_as(db, role, batch(p, []))
        allowed = await db.fetchval(
            "select has_function_privilege($1, 'public.syncd_apply_unfenced(jsonb)', 'execute')", role
        )
        assert allowed is False
    await db.execute("delete from public.projects where id = $1::uuid", p)
    assert await db.fetchval("select count(*) from public.syncd_fences") == 0
