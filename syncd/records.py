"""The studio's rows outside the live edit path: projects created and deleted, voices, exports, audio files.

These writes do not go through the engine: a project is created or deleted as a whole, and voices,
exports and audio files are not edited by editors. Both modes answer the same :class:`Records` calls:
:class:`LocalRecords` in the embedded store, :class:`SupabaseRecords` through PostgREST with the
service key. Input is checked here first, with messages that name the field
(``exports.progress: …``), so a bad call changes nothing in either mode.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Final, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from syncd.adapters.sqlite_schema import NOW
from syncd.errors import EditRejected, UpstreamError
from syncd.pages import every_row
from syncd.rows import (
    FIELD_DEPTH,
    AudioKind,
    ExportFormat,
    ExportStatus,
    ProjectFields,
    Seconds,
    Uuid,
    check_fields,
    first_error,
    is_uuid,
)

OtherTable = Literal["projects", "voices", "exports", "audio_files"]
"""The tables written here."""

Row = dict[str, Any]
Check = Callable[[Row], None]
"""Looks at a row before an update and raises :class:`EditRejected` to refuse it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class VoiceFields(_Strict):
    """What may be set in a voice."""

    name: Annotated[str, Field(max_length=500)] = ""
    provider: Annotated[str, Field(max_length=200)] = ""
    voice_ref: Annotated[str, Field(max_length=2000)] = ""
    sample_url: Annotated[str, Field(max_length=2000)] | None = None
    settings: dict[str, JsonValue] = Field(default_factory=dict)


class ExportFields(_Strict):
    """What may be set in an export."""

    status: ExportStatus = "queued"
    format: ExportFormat = "mp4"
    resolution: Annotated[str, Field(max_length=50)] = "1080p"
    progress: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    file_url: Annotated[str, Field(max_length=2000)] | None = None
    error: Annotated[str, Field(max_length=10_000)] | None = None


class AudioFileFields(_Strict):
    """What may be set in an audio file."""

    scene_id: Uuid | None = None
    voice_id: Uuid | None = None
    kind: AudioKind = "voice"
    file_url: Annotated[str, Field(max_length=2000)] | None = None
    duration: Seconds = 0.0


FIELDS: Final[dict[OtherTable, type[BaseModel]]] = {
    "projects": ProjectFields,
    "voices": VoiceFields,
    "exports": ExportFields,
    "audio_files": AudioFileFields,
}

_ADAPTERS: Final = {
    table: {
        name: TypeAdapter(info.rebuild_annotation(), config=ConfigDict(strict=True))
        for name, info in model.model_fields.items()
    }
    for table, model in FIELDS.items()
}

EXPORT_STEPS: Final[dict[str, int]] = {"queued": 0, "rendering": 1, "done": 2, "failed": 2}
"""How far along each export status is: an update may stay or move forward, never back."""


def validate_new(table: OtherTable, values: Mapping[str, Any]) -> Row:
    """Check the fields of a new row; return them whole, defaults filled in, as JSON values.

    Raises:
        EditRejected: ``bad_request`` naming the first wrong field.
    """
    _check_portable(table, values)
    try:
        parsed = FIELDS[table].model_validate(dict(values))
    except ValidationError as exc:
        raise EditRejected("bad_request", first_error(exc, table)) from None
    return parsed.model_dump(mode="json")


def validate_set(table: OtherTable, values: Mapping[str, Any]) -> Row:
    """Check the fields of an update; return them as JSON values.

    Raises:
        EditRejected: ``bad_request`` for no field, an unknown field or a wrongly typed one.
    """
    if not values:
        raise EditRejected("bad_request", f"{table}: name at least one field to change")
    _check_portable(table, values)
    adapters = _ADAPTERS[table]
    result: Row = {}
    for name, value in values.items():
        adapter = adapters.get(name)
        if adapter is None:
            known = ", ".join(adapters)
            raise EditRejected("bad_request", f"{table}.{name}: no such field (fields: {known})")
        try:
            result[name] = adapter.validate_python(value)
        except ValidationError as exc:
            raise EditRejected("bad_request", first_error(exc, f"{table}.{name}")) from None
    return result


def _check_portable(table: OtherTable, values: Mapping[str, Any]) -> None:
    """The rules every stored value keeps, whatever its field (:func:`syncd.rows.check_fields`).

    Raises:
        FieldError: (an ``EditRejected``, ``bad_request``) the first value that breaks one.
    """
    check_fields(dict(values), table, FIELD_DEPTH)


def check_id(value: object, where: str) -> str:
    """A UUID in lower case.

    Raises:
        EditRejected: ``bad_request`` naming ``where``.
    """
    if not is_uuid(value):
        raise EditRejected("bad_request", f"{where}: must be a UUID")
    return value.lower()


def given_or_new_id(value: object, where: str) -> str:
    """The id a caller gave (checked as by :func:`check_id`), or a new one when it gave none."""
    return str(uuid.uuid4()) if value is None else check_id(value, where)


def export_step(old: Row, new: Mapping[str, Any]) -> None:
    """Refuse an export update whose status goes back (``done`` → ``rendering``) or sideways past the end.

    Raises:
        EditRejected: ``conflict``.
    """
    status = new.get("status")
    if status is None or status == old["status"]:
        return
    if EXPORT_STEPS[status] <= EXPORT_STEPS[old["status"]]:
        raise EditRejected(
            "conflict",
            f"exports.status: cannot go from {old['status']} to {status}"
            " (queued → rendering → done | failed)",
        )


class Records(Protocol):
    """Rows of the four tables, in either mode. Filters are equalities; None matches NULL."""

    async def insert(self, table: OtherTable, row: Row) -> Row:
        """Insert a row (with its ``id``) and return it as stored.

        Raises:
            EditRejected: ``conflict`` when the id is taken; ``bad_request`` when a reference is broken.
        """

    async def update(self, table: OtherTable, row_id: str, values: Row, check: Check | None = None) -> Row:
        """Update a row; ``check`` sees the row as it is first.

        Raises:
            EditRejected: ``not_found``, or what ``check`` raised.
        """

    async def delete(self, table: OtherTable, row_id: str) -> bool:
        """Delete a row; return whether there was one."""

    async def get(self, table: OtherTable, row_id: str) -> Row | None:
        """One row by id."""

    async def select(self, table: OtherTable, where: Mapping[str, Any]) -> list[Row]:
        """The rows matching ``where``, oldest first."""


_R = TypeVar("_R", bound=Mapping[str, Any])


async def create_once(
    records: Records, table: OtherTable, row: Row, same: Iterable[str], what: str
) -> tuple[Row, bool]:
    """Insert ``row``, unless its id already holds a row with the same values in the fields ``same``.

    A create that names its id can then be sent again: a caller that lost the answer (a timeout, a
    restart) repeats the call and gets the row the first call made, not a second row and not an error.

    Args:
        same: the fields that make it the same call: the caller's fields and the row's owner.
        what: the row's kind in the conflict's message (``voice``).

    Returns:
        The row, and whether this call made it.

    Raises:
        EditRejected: ``conflict`` when the id holds a row with other values.
    """
    try:
        return await records.insert(table, row), True
    except EditRejected as exc:
        if exc.code != "conflict":
            raise
    existing = await records.get(table, row["id"])
    return check_repeat(existing, row, same, what), False


def check_repeat(existing: _R | None, given: Mapping[str, Any], same: Iterable[str], what: str) -> _R:
    """Check that a create whose id is taken repeats the call that took it: the row ``existing`` (None:
    gone meanwhile) has the ``given`` values in the fields ``same``.

    Returns:
        ``existing``.

    Raises:
        EditRejected: ``conflict`` naming the row's kind (``what``) and id.
    """
    if existing is None or any(existing.get(name) != given[name] for name in same):
        raise EditRejected("conflict", f"{what} {given['id']} exists with other values")
    return existing


_VOICE_GONE: Final = (
    f"update scenes set voice_id = null, version = version + 1, updated_at = {NOW} where voice_id = ?"  # noqa: S608
)
"""What Postgres' ``on delete set null`` does to a deleted voice's scenes, through their update trigger."""


class LocalRecords:
    """The four tables in the embedded store.

    Args:
        store: the daemon's :class:`~syncd.adapters.local.LocalBackend`, entered.
    """

    def __init__(self, store: Any) -> None:
        self._store = store

    async def insert(self, table: OtherTable, row: Row) -> Row:
        """Insert in one transaction; the database fills in the rest."""
        from syncd.adapters.local import encode_value, select_rows

        def run(db: sqlite3.Connection) -> Row:
            cols = list(row)
            try:
                db.execute(
                    f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",  # noqa: S608
                    [encode_value(table, c, row[c]) for c in cols],
                )
            except sqlite3.IntegrityError as exc:
                raise _integrity(table, exc) from None
            return select_rows(db, table, "id = ?", (row["id"],))[0]

        return dict(await self._store.run(run))

    async def update(self, table: OtherTable, row_id: str, values: Row, check: Check | None = None) -> Row:
        """Check and update in one transaction."""
        from syncd.adapters.local import encode_value, select_rows
        from syncd.adapters.sqlite_schema import NOW

        def run(db: sqlite3.Connection) -> Row:
            found = select_rows(db, table, "id = ?", (row_id,))
            if not found:
                raise EditRejected("not_found", f"{table} row {row_id} does not exist")
            if check is not None:
                check(found[0])
            assignments = ", ".join(f"{name} = ?" for name in values)
            bump = ", version = version + 1" if table == "projects" else ""
            try:
                db.execute(
                    f"update {table} set {assignments}{bump}, updated_at = {NOW} where id = ?",  # noqa: S608
                    [*(encode_value(table, n, v) for n, v in values.items()), row_id],
                )
            except sqlite3.IntegrityError as exc:
                raise _integrity(table, exc) from None
            return select_rows(db, table, "id = ?", (row_id,))[0]

        return dict(await self._store.run(run))

    async def delete(self, table: OtherTable, row_id: str) -> bool:
        """Delete by id (the store's foreign keys cascade)."""

        def run(db: sqlite3.Connection) -> bool:
            if table == "voices":
                # What Postgres' `on delete set null` does through the scenes' update trigger: their
                # version moves, so an open project that reads them again takes the change.
                db.execute(_VOICE_GONE, (row_id,))
            return db.execute(f"delete from {table} where id = ?", (row_id,)).rowcount > 0  # noqa: S608

        return bool(await self._store.run(run))

    async def get(self, table: OtherTable, row_id: str) -> Row | None:
        """One row by id."""
        found = await self.select(table, {"id": row_id})
        return found[0] if found else None

    async def select(self, table: OtherTable, where: Mapping[str, Any]) -> list[Row]:
        """Rows by equality filters, oldest first."""
        from syncd.adapters.local import select_rows
        from syncd.adapters.sqlite_schema import COLUMNS

        conditions: list[str] = []
        args: list[Any] = []
        for name, value in where.items():
            assert name in COLUMNS[table], f"unknown column {table}.{name}"
            if value is None:
                conditions.append(f"{name} is null")
            else:
                conditions.append(f"{name} = ?")
                args.append(value)
        clause = " and ".join(conditions) or "1 = 1"

        def run(db: sqlite3.Connection) -> list[Row]:
            return select_rows(db, table, f"{clause} order by created_at, id", tuple(args))

        return list(await self._store.run(run))


def _integrity(table: str, exc: sqlite3.IntegrityError) -> EditRejected:
    text = str(exc)
    if "UNIQUE" in text or "PRIMARY KEY" in text:
        return EditRejected("conflict", f"{table}: a row with this id exists")
    if "FOREIGN KEY" in text:
        return EditRejected("bad_request", f"{table}: a referenced row does not exist")
    return EditRejected("bad_request", f"{table}: refused by the store ({text})")


class SupabaseRecords:
    """The four tables through PostgREST, with the service key.

    Args:
        client: the daemon's (or the library's) supabase-py async client.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    async def insert(self, table: OtherTable, row: Row) -> Row:
        """Insert and return the stored row."""
        answer = await self._run(self._client.table(table).insert(row), table)
        return dict(answer[0])

    async def update(self, table: OtherTable, row_id: str, values: Row, check: Check | None = None) -> Row:
        """Check the current row, then update it only if it is still the same (compared on ``updated_at``)."""
        old = await self.get(table, row_id)
        if old is None:
            raise EditRejected("not_found", f"{table} row {row_id} does not exist")
        if check is not None:
            check(old)
        query = self._client.table(table).update(values).eq("id", row_id).eq("updated_at", old["updated_at"])
        answer = await self._run(query, table)
        if not answer:
            raise EditRejected("conflict", f"{table} row {row_id} changed meanwhile; read it and try again")
        return dict(answer[0])

    async def delete(self, table: OtherTable, row_id: str) -> bool:
        """Delete by id."""
        answer = await self._run(self._client.table(table).delete().eq("id", row_id), table)
        return bool(answer)

    async def get(self, table: OtherTable, row_id: str) -> Row | None:
        """One row by id."""
        found = await self.select(table, {"id": row_id})
        return found[0] if found else None

    async def select(self, table: OtherTable, where: Mapping[str, Any]) -> list[Row]:
        """Rows by equality filters, oldest first."""

        def query() -> Any:
            built = self._client.table(table).select("*")
            for name, value in where.items():
                built = built.is_(name, "null") if value is None else built.eq(name, value)
            return built.order("created_at").order("id")

        return await self._run(query, table, every=True)

    async def _run(self, query: Any, table: str, *, every: bool = False) -> list[Row]:
        """The rows of ``query`` (with ``every``: a function making it, read a page at a time)."""
        import httpx
        from postgrest.exceptions import APIError

        try:
            if every:
                return await every_row(query)
            answer = await query.execute()
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{table}: Supabase cannot be reached ({type(exc).__name__})") from None
        except APIError as exc:
            code = exc.code or ""
            if code == "23505":
                raise EditRejected("conflict", f"{table}: a row with this id exists") from None
            if code == "23503":
                raise EditRejected("bad_request", f"{table}: a referenced row does not exist") from None
            if code.startswith(("23", "22")):
                raise EditRejected(
                    "bad_request", f"{table}: refused by the database ({exc.message})"
                ) from None
            raise UpstreamError(f"{table}: Supabase answered {code or 'an error'}: {exc.message}") from None
        return [dict(row) for row in answer.data or []]
