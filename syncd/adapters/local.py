"""LocalBackend: the embedded store, a SQLite file in the state directory.

It holds the six tables (:mod:`syncd.adapters.sqlite_schema`) and applies write batches with the same
semantics as the ``syncd_apply`` Postgres function of Supabase mode: one transaction per batch; every
mutation id recorded in ``syncd_mutations``; an insert, a field or a delete whose mutation was already
recorded is skipped, so a batch replayed after a crash applies nothing twice; each update raises the
row's ``version`` by one. The batch and its result travel as JSON (see :mod:`syncd.adapters.batches`),
the same documents that ``syncd_apply`` takes and returns.

SQLite calls block, so they run on one dedicated thread (a connection belongs to its thread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from syncd.adapters.sqlite_schema import COLUMNS, DDL, NOW
from syncd.errors import WriteError

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]

SYNCED = ("projects", "scenes", "clips")


class LocalBackend:
    """The embedded SQLite store.

    Args:
        path: the database file; created with its tables when missing.
    """

    name = "local"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-local")
        self._db: sqlite3.Connection | None = None

    async def __aenter__(self) -> LocalBackend:
        await self._call(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._call(self._close)
        self._executor.shutdown(wait=True)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = full")
        db.execute("pragma foreign_keys = on")
        db.execute("pragma busy_timeout = 5000")
        db.executescript(DDL)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def readiness(self) -> tuple[bool, str]:
        """Ready while the file is open; there is no change feed to wait for."""
        return (self._db is not None, "embedded store open" if self._db is not None else "store closed")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        assert db is not None, "LocalBackend used outside its context"
        db.execute("begin immediate")
        try:
            yield db
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")

    # Reads ---------------------------------------------------------------------------------------

    async def load(self, project_id: str) -> dict[str, Any]:
        """Read a project with its scenes and clips: ``{"project": row or None, "scenes", "clips"}``."""
        return await self._call(self._load, project_id)

    reread = load

    def _load(self, project_id: str) -> dict[str, Any]:
        with self._transaction() as db:
            project = _one(db, "projects", "id = ?", (project_id,))
            scenes = _rows(db, "scenes", "project_id = ? order by scene_index, id", (project_id,))
            clips = _rows(db, "clips", "project_id = ? order by order_index, id", (project_id,))
        return {"project": project, "scenes": scenes, "clips": clips}

    async def project_owner(self, project_id: str) -> tuple[bool, str | None]:
        """Whether the project exists, and its ``user_id``."""
        return await self._call(self._owner, project_id)

    def _owner(self, project_id: str) -> tuple[bool, str | None]:
        assert self._db is not None
        found = self._db.execute("select user_id from projects where id = ?", (project_id,)).fetchone()
        return (found is not None, found[0] if found else None)

    async def list_projects(self) -> list[Row]:
        """Every project, newest first."""
        return await self._call(self._list)

    def _list(self) -> list[Row]:
        with self._transaction() as db:
            return _rows(db, "projects", "1 = 1 order by created_at desc, id", ())

    # Writes --------------------------------------------------------------------------------------

    async def create_project(self, title: str, user_id: str | None = None) -> Row:
        """Insert a project and return its row."""
        return await self._call(self._create_project, title, user_id)

    def _create_project(self, title: str, user_id: str | None) -> Row:
        project_id = str(uuid.uuid4())
        with self._transaction() as db:
            db.execute(
                "insert into projects (id, user_id, title) values (?, ?, ?)", (project_id, user_id, title)
            )
            row = _one(db, "projects", "id = ?", (project_id,))
        assert row is not None
        return row

    async def apply(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one write batch in one transaction; see the module docstring.

        Raises:
            WriteError: the batch broke a constraint (not retryable) or the file is busy (retryable).
        """
        try:
            return await self._call(self._apply, batch)
        except sqlite3.IntegrityError as exc:
            raise WriteError(f"batch refused by the store: {exc}", retryable=False) from exc
        except sqlite3.OperationalError as exc:
            raise WriteError(f"store busy or failing: {exc}", retryable=True) from exc

    def _apply(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        project_id = batch["project_id"]
        with self._transaction() as db:
            done = _recorded(db, batch["mutations"])
            touched: dict[tuple[str, str], None] = {}
            missing: dict[tuple[str, str], None] = {}
            for op in batch["ops"]:
                key = (op["table"], op["id"])
                if _apply_op(db, project_id, op, done):
                    touched[key] = None
                else:
                    missing[key] = None
            db.executemany(
                "insert into syncd_mutations (project_id, client_id, mid) values (?, ?, ?)"
                " on conflict (client_id, mid) do nothing",
                [(project_id, c, m) for c, m in batch["mutations"]],
            )
            rows = []
            for table, row_id in touched:
                row = _one(db, table, "id = ?", (row_id,))
                if row is None:
                    missing[(table, row_id)] = None
                else:
                    rows.append({"table": table, "row": row})
        return {"rows": rows, "missing": [{"table": t, "id": i} for t, i in missing]}


def _apply_op(
    db: sqlite3.Connection, project_id: str, op: Mapping[str, Any], done: set[tuple[str, int]]
) -> bool:
    """Apply one row operation; return whether the row exists afterwards."""
    table, row_id = op["table"], op["id"]
    if table not in SYNCED:
        raise sqlite3.IntegrityError(f"table {table!r} is not synced")
    owner = "id" if table == "projects" else "project_id"
    exists = db.execute(
        f"select 1 from {table} where id = ? and {owner} = ?", (row_id, project_id)
    ).fetchone()
    kind = op["op"]
    if kind == "insert":
        if exists or tuple(op["by"]) in done:
            return bool(exists)
        row = {**op["row"], "id": row_id, "project_id": project_id}
        cols = [c for c in row if c in COLUMNS[table] and c not in ("version", "created_at", "updated_at")]
        values = [_encode(table, c, row[c]) for c in cols]
        db.execute(
            f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",
            values,
        )
        return True
    if not exists:
        return False
    if kind == "delete":
        if tuple(op["by"]) in done:
            return True
        db.execute(f"delete from {table} where id = ?", (row_id,))
        return False
    if kind == "update":
        fields = {name: w["value"] for name, w in op["set"].items() if tuple(w["by"]) not in done}
        for name in fields:
            if name not in COLUMNS[table] or name in ("id", "project_id", "user_id", "version"):
                raise sqlite3.IntegrityError(f"column {table}.{name} cannot be written")
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            db.execute(
                f"update {table} set {assignments}, version = version + 1, updated_at = {NOW} where id = ?",
                [*(_encode(table, n, v) for n, v in fields.items()), row_id],
            )
        return True
    raise sqlite3.IntegrityError(f"unknown op {kind!r}")


def _recorded(db: sqlite3.Connection, mutations: list[list[Any]]) -> set[tuple[str, int]]:
    done: set[tuple[str, int]] = set()
    for client_id, mid in mutations:
        found = db.execute(
            "select 1 from syncd_mutations where client_id = ? and mid = ?", (client_id, mid)
        ).fetchone()
        if found:
            done.add((client_id, mid))
    return done


def _encode(table: str, column: str, value: Any) -> Any:
    if COLUMNS[table][column] == "json":
        return json.dumps(value, separators=(",", ":"))
    return value


def _decode(table: str, row: sqlite3.Row | tuple[Any, ...], names: list[str]) -> Row:
    out: Row = {}
    kinds = COLUMNS[table]
    for name, value in zip(names, row, strict=True):
        kind = kinds[name]
        if value is None:
            out[name] = None
        elif kind == "json":
            out[name] = json.loads(value)
        elif kind == "real":
            out[name] = float(value)
        else:
            out[name] = value
    return out


def _rows(db: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...]) -> list[Row]:
    names = list(COLUMNS[table])
    cursor = db.execute(f"select {', '.join(names)} from {table} where {where}", args)
    return [_decode(table, r, names) for r in cursor]


def _one(db: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...]) -> Row | None:
    found = _rows(db, table, where, args)
    return found[0] if found else None
