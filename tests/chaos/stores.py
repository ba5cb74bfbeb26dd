"""What the database holds after a chaos run, read the same way from the embedded store and PostgreSQL.

Each store gets a write log before the daemon starts: triggers that note every value written to a
tracked column (``scenes.heading``, ``scenes.body``, ``clips.prompt``), by an insert or by an update
that sets the column, whether or not the value changes. Every value an editor writes is unique to its
mutation, and a save sets only the fields of mutations not recorded yet, so each value is written once:
a value written twice (the same batch retried without its record, an old mutation replayed after a
newer one) is a mutation applied twice. The mutation record (``syncd_mutations``, each client's
highest applied mid) says up to which mid an editor's acknowledged mutations reached the database.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from syncd.adapters.local import LocalBackend

TRACKED: dict[str, tuple[str, ...]] = {"scenes": ("heading", "body"), "clips": ("prompt",)}
"""The columns the editors write and the write log follows, per table."""

Write = tuple[str, str, str, str | None]
"""One logged write: table, row id, column, the value it took."""


@dataclass
class DbState:
    """One project as the database holds it, with the mutation record and the write log.

    Attributes:
        scenes: scene id -> the scene's columns.
        clips: clip id -> the clip's columns.
        project: the project row.
        recorded: client id -> that client's mid in ``syncd_mutations``, the highest applied.
        writes: every logged write, oldest first.
    """

    scenes: dict[str, dict[str, Any]] = field(default_factory=dict)
    clips: dict[str, dict[str, Any]] = field(default_factory=dict)
    project: dict[str, Any] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)


class Store(Protocol):
    """Where a chaos run's project lives."""

    async def read(self, project_id: str) -> DbState:
        """The project, the mutation record and the write log as they are now."""


# ---- the embedded store ------------------------------------------------------------------------------


_SQLITE_LOG = """
create table if not exists chaos_writes (
  n integer primary key, tbl text not null, row_id text not null, col text not null, value text
);
"""

_SQLITE_TRIGGER = """
create trigger if not exists chaos_{table}_{column}_{name} after {event} on {table}
begin
  insert into chaos_writes (tbl, row_id, col, value) values ('{table}', new.id, '{column}', new.{column});
end;
"""


def _sqlite_log_ddl() -> str:
    """The write log in SQLite: a trigger per tracked column on insert and on an update that sets it."""
    return _SQLITE_LOG + "".join(
        _SQLITE_TRIGGER.format(table=table, column=column, name=name, event=event)
        for table, columns in TRACKED.items()
        for column in columns
        for name, event in (("insert", "insert"), ("update", f"update of {column}"))
    )


class LocalStore:
    """The embedded store of a local-mode daemon: ``store.db`` in its state directory.

    Args:
        state_dir: the daemon's state directory.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "store.db"

    async def seed(self, scenes: int) -> tuple[str, list[str]]:
        """Create the store (before the daemon starts) with a project of ``scenes`` scenes and the log.

        Returns:
            The project id and its scene ids in scene order.
        """
        seeder = str(uuid.uuid4())
        scene_ids = [str(uuid.uuid4()) for _ in range(scenes)]
        async with LocalBackend(self.path) as store:
            project = await store.create_project("Chaos")
            ops = [
                {
                    "op": "insert",
                    "table": "scenes",
                    "id": scene_id,
                    "row": {"scene_index": index, "heading": f"Scene {index + 1}", "duration": 5.0},
                    "by": [seeder, index + 1],
                }
                for index, scene_id in enumerate(scene_ids)
            ]
            mutations = [[seeder, index + 1] for index in range(scenes)]
            await store.apply_encoded({"project_id": project["id"], "ops": ops, "mutations": mutations})
        db = sqlite3.connect(self.path)
        try:
            db.executescript(_sqlite_log_ddl())
        finally:
            db.close()
        return str(project["id"]), scene_ids

    def durable(self) -> tuple[set[tuple[str, int]], dict[str, int]]:
        """The mutations in the outbox's journal, by (client id, mid), and the store's record: client id
        -> the highest mid saved, which every lower mid of that client was saved with or before.

        Only while no daemon runs on the state directory (this opens its files for writing, which
        replays what their write-ahead logs hold).
        """

        def pairs(path: Path, table: str) -> list[tuple[str, int]]:
            db = sqlite3.connect(path)
            try:
                return [(str(c), int(m)) for c, m in db.execute(f"select client_id, mid from {table}")]  # noqa: S608
            finally:
                db.close()

        saved: dict[str, int] = {}
        for client_id, mid in pairs(self.path, "syncd_mutations"):
            saved[client_id] = max(mid, saved.get(client_id, mid))
        return set(pairs(self.path.with_name("outbox.db"), "journal")), saved

    async def read(self, project_id: str) -> DbState:
        """Read the store (read-only: the daemon may be writing it)."""
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            db.row_factory = sqlite3.Row
            state = DbState()
            for row in db.execute("select * from projects where id = ?", (project_id,)):
                state.project = dict(row)
            for row in db.execute("select * from scenes where project_id = ?", (project_id,)):
                state.scenes[row["id"]] = dict(row)
            for row in db.execute("select * from clips where project_id = ?", (project_id,)):
                state.clips[row["id"]] = dict(row)
            query = "select client_id, mid from syncd_mutations where project_id = ?"
            state.recorded = {row["client_id"]: int(row["mid"]) for row in db.execute(query, (project_id,))}
            query = "select tbl, row_id, col, value from chaos_writes order by n"
            state.writes = [(r["tbl"], r["row_id"], r["col"], r["value"]) for r in db.execute(query)]
            return state
        finally:
            db.close()


# ---- PostgreSQL (Supabase mode) ----------------------------------------------------------------------


def _postgres_log_ddl() -> str:
    statements = [
        "create table public.chaos_writes (n bigserial primary key, tbl text not null, row_id uuid not null,"
        " col text not null, value text)",
        """create function public.chaos_log_write() returns trigger
        language plpgsql security definer set search_path = '' as $$
        begin
          insert into public.chaos_writes (tbl, row_id, col, value)
          values (tg_table_name, new.id, tg_argv[0], to_jsonb(new) ->> tg_argv[0]);
          return null;
        end
        $$""",
    ]
    for table, columns in TRACKED.items():
        for column in columns:
            statements.append(
                f"create trigger chaos_{table}_{column}_update after update of {column} on public.{table}"
                f" for each row execute function public.chaos_log_write('{column}')"
            )
            statements.append(
                f"create trigger chaos_{table}_{column}_insert after insert on public.{table} for each row"
                f" execute function public.chaos_log_write('{column}')"
            )
    return ";\n".join(statements) + ";"


REFUSAL_DDL = """
create table public.chaos_refusal (only_row boolean primary key default true, sqlstate text);
insert into public.chaos_refusal (sqlstate) values (null);
create function public.chaos_refuse() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  code text;
begin
  select r.sqlstate into code from public.chaos_refusal r;
  if code is not null then
    raise exception using errcode = code, message = 'chaos: the database refuses this transaction';
  end if;
  return null;
end
$$;
create trigger chaos_refuse before insert on public.syncd_mutations
  for each statement execute function public.chaos_refuse();
"""
"""A switch that makes every ``syncd_apply`` call fail inside its transaction with a chosen SQLSTATE.

``syncd_apply`` inserts its mutation ids with one statement on every call, so a statement trigger on
``syncd_mutations`` runs once per call, after the rows were written: the refusal rolls them back.
"""


class PostgresStore:
    """The project tables of a Supabase project (the stand-in's database).

    Args:
        pool: a superuser pool on the database.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @staticmethod
    async def install(dsn: str) -> None:
        """Add the write log and the refusal switch to the database at ``dsn``."""
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(_postgres_log_ddl())
            await conn.execute(REFUSAL_DDL)
        finally:
            await conn.close()

    async def seed(self, scenes: int) -> tuple[str, list[str]]:
        """Create an anonymous project with ``scenes`` scenes; return its id and scene ids in order."""
        project_id = str(
            await self.pool.fetchval("insert into public.projects (title) values ('Chaos') returning id")
        )
        scene_ids = []
        for index in range(scenes):
            scene_id = await self.pool.fetchval(
                "insert into public.scenes (project_id, scene_index, heading, duration)"
                " values ($1, $2, $3, 5.0) returning id",
                uuid.UUID(project_id),
                index,
                f"Scene {index + 1}",
            )
            scene_ids.append(str(scene_id))
        return project_id, scene_ids

    async def refuse(self, sqlstate: str | None) -> None:
        """Make every ``syncd_apply`` call fail with ``sqlstate`` from now on (None: accept again)."""
        await self.pool.execute("update public.chaos_refusal set sqlstate = $1", sqlstate)

    async def read(self, project_id: str) -> DbState:
        """Read the project, its mutation record and the write log in one snapshot."""
        pid = uuid.UUID(project_id)
        state = DbState()
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            project = await conn.fetchrow("select * from public.projects where id = $1", pid)
            state.project = _plain(dict(project)) if project is not None else {}
            for row in await conn.fetch("select * from public.scenes where project_id = $1", pid):
                state.scenes[str(row["id"])] = _plain(dict(row))
            for row in await conn.fetch("select * from public.clips where project_id = $1", pid):
                state.clips[str(row["id"])] = _plain(dict(row))
            query = "select client_id, mid from public.syncd_mutations where project_id = $1"
            state.recorded = {row["client_id"]: int(row["mid"]) for row in await conn.fetch(query, pid)}
            query = "select tbl, row_id::text, col, value from public.chaos_writes order by n"
            state.writes = [(r["tbl"], r["row_id"], r["col"], r["value"]) for r in await conn.fetch(query)]
        return state


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its uuids as text, as editors see them."""
    return {key: str(value) if isinstance(value, uuid.UUID) else value for key, value in row.items()}
