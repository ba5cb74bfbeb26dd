"""LocalBackend: the embedded store, a SQLite file in the state directory.

It holds the six tables (:mod:`syncd.adapters.sqlite_schema`) and applies write batches with the same
semantics as the ``syncd_apply`` Postgres function of Supabase mode: one transaction per batch; each
client's highest mid recorded in ``syncd_mutations`` (per project); an insert, a field or a delete
whose mid is at or below its client's recorded one in the batch's project is skipped, so a batch
replayed after a crash applies nothing twice; each update raises the row's ``version`` by one. The
batch and its result travel as JSON (see :mod:`syncd.core.batch`), the same documents that
``syncd_apply`` takes and returns.

SQLite calls block, so they run on one dedicated thread (a connection belongs to its thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Self, TypeVar

from syncd.adapters import fileformat
from syncd.adapters.sqlite_schema import COLUMNS, DDL, FORMAT, NOW, migrate
from syncd.backend import DocumentBackend, RemoteSink
from syncd.core.ids import ProjectId
from syncd.core.schema import EDITABLE_FIELDS, READ_ONLY_FIELDS, Table, table_named
from syncd.errors import StaleOwner, StartupError, WriteError

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]


OTHERS_POLL = 1.0
"""Seconds between two looks at whether another process wrote the store."""


class LocalBackend(DocumentBackend):
    """The embedded SQLite store.

    Args:
        path: the database file; created with its tables when missing.
        read_only: only read the file, and create nothing: a missing file reads as an empty store.
    """

    name = "local"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self._path = path
        self._read_only = read_only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-local")
        self._db: sqlite3.Connection | None = None
        self._followed: dict[ProjectId, RemoteSink] = {}
        self._watch: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._call(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._call(self._close)
        self._executor.shutdown(wait=True)

    def _open(self) -> None:
        """Open the store, creating it and its folder when missing.

        Raises:
            StartupError: the folder cannot be made, or the file cannot be read, is not a store or was
                written by a newer syncd; the message names it (the daemon and the one-shot commands
                print it as one line).
        """
        if self._read_only:
            self._open_read_only()
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot make the store's folder {self._path.parent}: {exc.strerror or exc}"
            ) from exc
        try:
            self._db, _ = fileformat.connect(self._path, FORMAT, self._prepare)
        except sqlite3.Error as exc:
            raise StartupError(
                f"cannot open the store {self._path}: {exc}; move it aside or restore it"
            ) from exc

    def _open_read_only(self) -> None:
        if not self._path.exists():
            # The store a first write would create: empty, so it is made in memory rather than on disk.
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            self._db.executescript(DDL)
            return
        try:
            self._db, _ = fileformat.connect(self._path, FORMAT, _read_only_prepare, read_only=True)
        except sqlite3.Error as exc:
            raise StartupError(f"cannot read the store {self._path}: {exc}") from exc

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = full")
        db.execute("pragma foreign_keys = on")
        db.execute("pragma busy_timeout = 5000")
        db.executescript(DDL)
        if migrate(db):
            log.info("store %s: syncd_mutations now keeps each client's highest mid per project", self._path)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def readiness(self) -> tuple[bool, str]:
        """Ready while the file is open; there is no change feed to wait for."""
        return (self._db is not None, "embedded store open" if self._db is not None else "store closed")

    async def follow(self, project_id: ProjectId, sink: RemoteSink) -> None:
        """Ask ``sink`` to re-read the project whenever another process has written the store.

        The daemon's own writes need no feed; another writer (``syncd import`` while the daemon runs,
        the ``sqlite3`` shell) would otherwise stay out of sight of the open projects.
        """
        self._followed[project_id] = sink
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_others(), name="syncd.local.others")

    async def unfollow(self, project_id: ProjectId) -> None:
        """Stop asking for re-reads of the project."""
        self._followed.pop(project_id, None)

    async def _watch_others(self) -> None:
        # SQLite's data_version moves when another connection commits, and only then.
        seen = await self._call(self._data_version)
        while True:
            await asyncio.sleep(OTHERS_POLL)
            try:
                now = await self._call(self._data_version)
            except sqlite3.Error as exc:
                log.warning("cannot tell whether another process wrote the store: %s", exc)
                continue
            if now != seen:
                seen = now
                for project_id, sink in list(self._followed.items()):
                    sink(project_id, None)

    def _data_version(self) -> int:
        assert self._db is not None, "LocalBackend used outside its context"
        return int(self._db.execute("pragma data_version").fetchone()[0])

    def feed_connected(self) -> bool | None:
        """The embedded store has no change feed."""
        return None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        assert self._db is not None, "LocalBackend used outside its context"
        return fileformat.transaction(self._db)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the store's thread in one transaction: its writes commit together or not at all."""

        def call() -> T:
            with self._transaction() as db:
                return fn(db)

        return await self._call(call)

    # Reads ---------------------------------------------------------------------------------------

    async def read_project(self, project_id: str) -> dict[str, Any]:
        """Read a project: ``{"project": row or None, "scenes", "clips", "applied"}``.

        ``applied`` maps each client id to the highest mid recorded for it in this project.
        """
        return await self._call(self._load, project_id)

    def _load(self, project_id: str) -> dict[str, Any]:
        with self._transaction() as db:
            project = _one(db, "projects", "id = ?", (project_id,))
            scenes = _rows(db, "scenes", "project_id = ? order by scene_index, id", (project_id,))
            clips = _rows(db, "clips", "project_id = ? order by order_index, id", (project_id,))
            applied = db.execute(
                "select client_id, mid from syncd_mutations where project_id = ?", (project_id,)
            ).fetchall()
        return {"project": project, "scenes": scenes, "clips": clips, "applied": dict(applied)}

    async def project_owner(self, project_id: ProjectId) -> tuple[bool, str | None]:
        """Whether the project exists, and its ``user_id``."""
        return await self._call(self._owner, project_id)

    def _owner(self, project_id: str) -> tuple[bool, str | None]:
        assert self._db is not None
        found = self._db.execute("select user_id from projects where id = ?", (project_id,)).fetchone()
        return (found is not None, found[0] if found else None)

    async def row_projects(self, table: Table, ids: list[str]) -> dict[str, str]:
        """``{row id: project id}`` of the rows among ``ids`` that ``table`` (scenes or clips) holds.

        For ``syncd import``, which must not write a row whose id another project holds.
        """
        return await self._call(self._row_projects, table, ids)

    def _row_projects(self, table: Table, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._transaction() as db:
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                marks = ", ".join("?" for _ in chunk)
                rows = db.execute(f"select id, project_id from {table} where id in ({marks})", chunk)
                found.update((str(row_id), str(project_id)) for row_id, project_id in rows.fetchall())
        return found

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

    async def insert_missing(self, table: str, rows: list[Row]) -> list[str]:
        """Insert the ``projects`` or ``voices`` rows whose id is free, each with the id it carries.

        For the demo project and ``syncd import``, which keep given ids; batches cannot insert these
        tables. A row whose id is taken is left as it is.

        Returns:
            The ids that were inserted.

        Raises:
            WriteError: a table other than those two, an unknown column, or a broken constraint.
        """
        try:
            return await self._call(self._insert_missing, table, rows)
        except sqlite3.IntegrityError as exc:
            raise WriteError(f"insert refused by the store: {exc}", retryable=False) from exc

    def _insert_missing(self, table: str, rows: list[Row]) -> list[str]:
        if table not in ("projects", "voices"):
            raise sqlite3.IntegrityError(f"insert_missing does not write {table}")
        inserted: list[str] = []
        with self._transaction() as db:
            for row in rows:
                unknown = set(row) - set(COLUMNS[table])
                if unknown:
                    raise sqlite3.IntegrityError(f"unknown column {table}.{sorted(unknown)[0]}")
                cols = list(row)
                found = db.execute(
                    f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})"
                    " on conflict (id) do nothing returning id",
                    [_encode(table, c, v) for c, v in row.items()],
                ).fetchone()
                if found is not None:
                    inserted.append(found[0])
        return inserted

    async def apply_encoded(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one write batch in its JSON form, as ``syncd_apply`` takes it; see the module docstring.

        Raises:
            StaleOwner: the batch's ``fence`` is below the highest the store has seen for the project.
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
            project_exists = db.execute("select 1 from projects where id = ?", (project_id,)).fetchone()
            if batch.get("fence") is not None:
                _check_fence(db, project_id, batch["fence"], project_exists is not None)
            touched: dict[tuple[Table, str], None] = {}
            for op in batch["ops"]:
                if op["op"] == "delete" and op["table"] == "scenes":
                    # Its clips lose their scene: the answer carries them, as Realtime would.
                    found = db.execute(
                        "select id from clips where scene_id = ? and project_id = ?", (op["id"], project_id)
                    )
                    touched.update(dict.fromkeys(("clips", str(r[0])) for r in found.fetchall()))
                table = _apply_op(db, project_id, project_exists is not None, op)
                touched[(table, op["id"])] = None
            # A project that is gone changes nothing, so there is nothing to protect from a replay.
            if project_exists is not None:
                highest: dict[str, int] = {}
                for client_id, mid in batch["mutations"]:
                    highest[client_id] = max(mid, highest.get(client_id, mid))
                db.executemany(_RECORD, [(project_id, c, m) for c, m in highest.items()])
            # What a row looks like after the whole batch decides: a row deleted and inserted again
            # is answered as a row, and a row of another project as missing.
            rows: list[Row] = []
            missing: list[Row] = []
            for table, row_id in touched:
                row = _one(db, table, f"id = ? and {_OWNER[table]} = ?", (row_id, project_id))
                if row is None:
                    missing.append({"table": table, "id": row_id})
                else:
                    rows.append({"table": table, "row": row})
        return {"rows": rows, "missing": missing}


def _read_only_prepare(db: sqlite3.Connection) -> None:
    db.execute("pragma busy_timeout = 5000")


_IDS_PER_QUERY = 500
"""Ids per ``in (...)`` list: within SQLite's limit on a statement's parameters in every build."""

_RECORD = (
    "insert into syncd_mutations (project_id, client_id, mid) values (?, ?, ?)"
    f" on conflict (project_id, client_id) do update set mid = excluded.mid, applied_at = {NOW}"
    " where excluded.mid > syncd_mutations.mid"
)
"""Raises a client's recorded mid to the batch's highest for it; a lower one leaves the record as it is."""

_OWNER: dict[Table, str] = {"projects": "id", "scenes": "project_id", "clips": "project_id"}
"""The column that ties a row to its project."""

_INSERT_IGNORED = frozenset({"id", "project_id", "version", "created_at", "updated_at"})
"""Fields an inserted row may carry whose values the store never takes from it."""


def _apply_op(db: sqlite3.Connection, project_id: str, project_exists: bool, op: Mapping[str, Any]) -> Table:
    """Apply one row operation (see `syncd.core.batch`) and return its table.

    Raises:
        sqlite3.IntegrityError: the op names a table, a column or an op that a batch may not write.
    """
    table, row_id, kind = _synced(op["table"]), op["id"], op["op"]
    if kind in ("insert", "delete") and table == "projects":
        raise sqlite3.IntegrityError(f"a batch cannot {kind} projects rows")
    if kind == "delete":
        if not _is_recorded(db, project_id, op["by"]):
            if table == "scenes":
                # What Postgres' `on delete set null` does through its update trigger: the clips of the
                # scene lose it, and their version moves, so the engine takes the change.
                db.execute(
                    f"update clips set scene_id = null, version = version + 1, updated_at = {NOW}"
                    " where scene_id = ? and project_id = ?",
                    (row_id, project_id),
                )
            db.execute(f"delete from {table} where id = ? and project_id = ?", (row_id, project_id))
    elif kind == "insert":
        values = _insert_values(table, row_id, op["row"])
        if project_exists and not _is_recorded(db, project_id, op["by"]):
            values = _live_references(db, table, project_id, values)
            cols = ["id", "project_id", *values]
            # Only a taken id is passed over (its row stays as it is); every other constraint still fails.
            db.execute(
                f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})"
                " on conflict (id) do nothing",
                [row_id, project_id, *(_encode(table, c, v) for c, v in values.items())],
            )
    elif kind == "update":
        for name in op["set"]:
            _check_writable(table, name)
        fields = {
            name: w["value"] for name, w in op["set"].items() if not _is_recorded(db, project_id, w["by"])
        }
        fields = _live_references(db, table, project_id, fields)
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            db.execute(
                f"update {table} set {assignments}, version = version + 1, updated_at = {NOW}"
                f" where id = ? and {_OWNER[table]} = ?",
                [*(_encode(table, n, v) for n, v in fields.items()), row_id, project_id],
            )
    else:
        raise sqlite3.IntegrityError(f"unknown op {kind!r}")
    return table


def _check_fence(db: sqlite3.Connection, project_id: str, fence: object, project_exists: bool) -> None:
    """Refuse a stale owner's batch, else raise the project's fence to ``fence`` (cluster mode).

    Raises:
        sqlite3.IntegrityError: ``fence`` is not a non-negative integer.
        StaleOwner: ``fence`` is below the highest token seen for the project.
    """
    if not isinstance(fence, int) or isinstance(fence, bool) or not 0 <= fence < 2**63:
        raise sqlite3.IntegrityError("batch.fence must be a non-negative integer")
    found = db.execute("select token from syncd_fences where project_id = ?", (project_id,)).fetchone()
    if found is not None and fence < found[0]:
        raise StaleOwner(
            f"stale owner: fence {fence} is below {found[0]}, the highest seen for project {project_id}"
        )
    # A project that does not exist has nothing to protect (and the batch changes nothing of it).
    if project_exists and (found is None or fence > found[0]):
        db.execute(
            "insert into syncd_fences (project_id, token) values (?, ?) on conflict (project_id)"
            f" do update set token = excluded.token, raised_at = {NOW}",
            (project_id, fence),
        )


def _synced(name: object) -> Table:
    try:
        return table_named(name)
    except ValueError as exc:
        raise sqlite3.IntegrityError(str(exc)) from None


def _check_writable(table: Table, name: str) -> None:
    if name in EDITABLE_FIELDS[table]:
        return
    if name in READ_ONLY_FIELDS:
        raise sqlite3.IntegrityError(f"column {table}.{name} cannot be written")
    raise sqlite3.IntegrityError(f"unknown column {table}.{name}")


def _insert_values(table: Table, row_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Return the columns an insert writes: the editable ones the row names (the rest take defaults)."""
    values: dict[str, Any] = {}
    for name, value in row.items():
        if name == "id" and value != row_id:
            raise sqlite3.IntegrityError("the inserted row's id differs from the op's id")
        if name not in _INSERT_IGNORED:
            _check_writable(table, name)
            values[name] = value
    return values


def _live_references(
    db: sqlite3.Connection, table: Table, project_id: str, values: dict[str, Any]
) -> dict[str, Any]:
    """Return ``values`` with a reference to a row that is gone set to None.

    A clip whose scene another writer deleted (or a scene whose voice is gone) would otherwise fail the
    whole batch on its foreign key, for good, and with it every edit of the project. NULL is what
    ``on delete set null`` would have written had the delete come a moment later; a scene of another
    project counts as gone.
    """
    args: tuple[Any, ...]
    if table == "clips" and isinstance(values.get("scene_id"), str):
        query, args = "select 1 from scenes where id = ? and project_id = ?", (values["scene_id"], project_id)
    elif table == "scenes" and isinstance(values.get("voice_id"), str):
        query, args = "select 1 from voices where id = ?", (values["voice_id"],)
    else:
        return values
    if db.execute(query, args).fetchone() is not None:
        return values
    column = "scene_id" if table == "clips" else "voice_id"
    return {**values, column: None}


def _is_recorded(db: sqlite3.Connection, project_id: str, by: list[Any]) -> bool:
    """Whether the mutation ``by`` counts as applied: its mid is at or below its client's recorded one."""
    client_id, mid = by
    found = db.execute(
        "select 1 from syncd_mutations where project_id = ? and client_id = ? and mid >= ?",
        (project_id, client_id, mid),
    ).fetchone()
    return found is not None


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


def select_rows(db: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...]) -> list[Row]:
    """Rows of ``table`` matching ``where`` (SQL with ``?`` parameters), decoded."""
    return _rows(db, table, where, args)


def encode_value(table: str, column: str, value: Any) -> Any:
    """A value as the store keeps it in this column (JSON columns as text)."""
    return _encode(table, column, value)
