"""From one wal2json change to the ``data`` of ``postgres_changes`` pushes, as Realtime's ``apply_rls`` does.

For each role among the subscriptions of the changed table, Realtime:

- casts every value with ``to_jsonb(value::text::type)`` (numbers stay numbers, jsonb becomes nested
  JSON, timestamptz becomes ``2026-11-26T11:42:20.161463+00:00``);
- lists in ``columns`` the table's columns that the role may SELECT, with their ``typname``, in attnum
  order, and keeps only those in ``record`` and ``old_record``;
- answers ``Error 400`` (no primary key) or ``Error 401`` (primary key not SELECTable) instead of data;
- keeps only values of at most 64 bytes and reports ``Error 413`` when the raw change exceeds the limit;
- evaluates filters on the new row (INSERT, UPDATE) or on the replica identity (DELETE);
- on a table with RLS, checks each subscriber of an INSERT or UPDATE by selecting the row by primary key
  as that subscriber's role and claims; DELETEs skip RLS but then only show the primary key.

The SQL all runs on the connection that polls the slot, one change at a time, in commit order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from localsupabase.db import as_role
from localsupabase.subscriptions import Subscription, qualified, quote_ident

logger = logging.getLogger(__name__)

ACTIONS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}
"""wal2json's action letters and the event types they become."""

SMALL_VALUE_BYTES = 64
"""Values kept in an oversized change (their jsonb text length, in bytes)."""

_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


@dataclass(frozen=True, slots=True)
class Routed:
    """The ``data`` of one change and the subscriptions that receive it.

    Attributes:
        subscriptions: The subscriptions that see this data (all of one role).
        data: The ``data`` object of the ``postgres_changes`` payload.
    """

    subscriptions: list[Subscription]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Value:
    """One column of the change: name, PostgreSQL type, and the value as jsonb text (``None`` for NULL)."""

    name: str
    type_name: str
    jsonb: str | None
    is_pkey: bool

    @property
    def json(self) -> Any:
        return None if self.jsonb is None else json.loads(self.jsonb)

    @property
    def text(self) -> str | None:
        """The value as ``jsonb #>> '{}'`` gives it: strings unquoted, anything else as JSON text."""
        if self.jsonb is None:
            return None
        if self.jsonb.startswith('"'):
            text: str = json.loads(self.jsonb)
            return text
        return self.jsonb

    @property
    def size(self) -> int | None:
        return None if self.jsonb is None else len(self.jsonb.encode())


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    typname: str
    selectable: bool


def _raw_text(value: Any) -> str | None:
    """Return a wal2json value as the text that PostgreSQL would print for it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ChangeRouter:
    """Builds the pushes for wal2json changes and picks their subscribers.

    Args:
        max_record_bytes: Changes whose raw record is larger get ``Error 413`` and only small values.
    """

    def __init__(self, *, max_record_bytes: int = 1024 * 1024) -> None:
        self.max_record_bytes = max_record_bytes
        self._type_names: dict[int, str] = {}

    async def route(
        self, conn: asyncpg.Connection, raw: str, subscriptions: Sequence[Subscription]
    ) -> list[Routed]:
        """Return what to send for one wal2json (format-version 2) change, grouped by subscriber role.

        Returns an empty list when nobody subscribed to the table and action or nobody may see the row.
        """
        # Keep numbers as their exact text: the cast to the column type happens in SQL.
        change = json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
        action = ACTIONS.get(change.get("action", ""))
        if action is None:
            return []
        schema, table = change["schema"], change["table"]
        wanted = [
            sub
            for sub in subscriptions
            if sub.schema == schema and sub.table == table and sub.binding.action in ("*", action)
        ]
        if not wanted:
            return []
        pkeys = {pk["name"] for pk in change.get("pk", [])}
        timestamp, size, new, old = await self._cast(conn, change, raw, pkeys)
        too_large = size > self.max_record_bytes
        routed: list[Routed] = []
        for role in dict.fromkeys(sub.role for sub in wanted):
            members = [sub for sub in wanted if sub.role == role]
            table_columns, rls = await self._table(conn, schema, table, role)
            if table_columns is None:
                continue
            selectable = {column.name for column in table_columns if column.selectable}
            base: dict[str, Any] = {"schema": schema, "table": table, "type": action}
            if action != "DELETE" and not any(value.is_pkey for value in new):
                routed.append(
                    Routed(members, self._error_data(base, "Error 400: Bad Request, no primary key"))
                )
                continue
            if action != "DELETE" and any(value.is_pkey and value.name not in selectable for value in new):
                routed.append(Routed(members, self._error_data(base, "Error 401: Unauthorized")))
                continue
            data = dict(base)
            data["commit_timestamp"] = timestamp
            data["columns"] = [{"name": c.name, "type": c.typname} for c in table_columns if c.selectable]
            if action in ("INSERT", "UPDATE"):
                data["record"] = self._record(new, old, selectable, too_large)
            if action == "UPDATE":
                data["old_record"] = self._old_record(old, selectable, too_large, pk_only=False)
            elif action == "DELETE":
                data["old_record"] = self._old_record(old, selectable, too_large, pk_only=rls)
            data["errors"] = ["Error 413: Payload Too Large"] if too_large else None
            visible = [
                sub
                for sub in members
                if await self._passes_filter(conn, sub, action, new, old)
                and (action == "DELETE" or not rls or await self._visible_to(conn, sub, schema, table, new))
            ]
            if visible:
                routed.append(Routed(visible, data))
        return routed

    @staticmethod
    def _error_data(base: dict[str, Any], error: str) -> dict[str, Any]:
        # Realtime's change structs still carry their other fields, empty, next to the error.
        data = dict(base, columns=[], commit_timestamp=None, errors=[error])
        if base["type"] in ("INSERT", "UPDATE"):
            data["record"] = {}
        if base["type"] in ("UPDATE", "DELETE"):
            data["old_record"] = {}
        return data

    @staticmethod
    def _record(
        new: list[_Value], old: list[_Value], selectable: set[str], too_large: bool
    ) -> dict[str, Any] | None:
        # A column missing from the new tuple is an unchanged TOASTed value: take it from the old row.
        by_name = {value.name: value for value in new}
        names = [value.name for value in new] + [value.name for value in old if value.name not in by_name]
        old_by_name = {value.name: value for value in old}
        record: dict[str, Any] = {}
        for name in names:
            if name not in selectable:
                continue
            current = by_name.get(name)
            if too_large:
                size = current.size if current is not None else None
                if size is None or size > SMALL_VALUE_BYTES:
                    continue
            chosen = current if current is not None else old_by_name[name]
            record[name] = chosen.json
        return record or None

    @staticmethod
    def _old_record(
        old: list[_Value], selectable: set[str], too_large: bool, *, pk_only: bool
    ) -> dict[str, Any] | None:
        record: dict[str, Any] = {}
        for value in old:
            if value.name not in selectable or (pk_only and not value.is_pkey):
                continue
            if too_large and (value.size is None or value.size > SMALL_VALUE_BYTES):
                continue
            record[value.name] = value.json
        return record or None

    async def _type_name(self, conn: asyncpg.Connection, column: Mapping[str, Any]) -> str:
        oid = column.get("typeoid")
        if oid is None:
            found: str = await conn.fetchval("select $1::text::regtype::text", column["type"])
            return found
        key = int(oid)
        if key not in self._type_names:
            self._type_names[key] = await conn.fetchval("select $1::oid::regtype::text", key)
        return self._type_names[key]

    async def _cast(
        self, conn: asyncpg.Connection, change: dict[str, Any], raw: str, pkeys: set[str]
    ) -> tuple[str, int, list[_Value], list[_Value]]:
        """Cast all values of the change in one query; return timestamp, raw size, new and old values."""
        new_columns = change.get("columns", [])
        old_columns = change.get("identity", [])
        selects = [
            f"to_char(($1::text::timestamptz at time zone 'utc'), '{_TIMESTAMP_FORMAT}')",
            "octet_length($2::text::jsonb::text)",
        ]
        args: list[Any] = [change["timestamp"], raw]
        names: list[tuple[str, str, bool]] = []
        for column in [*new_columns, *old_columns]:
            type_name = await self._type_name(conn, column)
            args.append(_raw_text(column.get("value")))
            position = len(args)
            # bytea keeps its text form, as in Realtime's cast function.
            cast = f"${position}::text" if type_name == "bytea" else f"${position}::text::{type_name}"
            selects.append(f"to_jsonb({cast})::text")
            names.append((column["name"], type_name, column["name"] in pkeys))
        row = await conn.fetchrow("select " + ", ".join(selects), *args)
        assert row is not None
        values = [
            _Value(name, type_name, row[index + 2], is_pkey)
            for index, (name, type_name, is_pkey) in enumerate(names)
        ]
        return row[0], row[1], values[: len(new_columns)], values[len(new_columns) :]

    @staticmethod
    async def _table(
        conn: asyncpg.Connection, schema: str, table: str, role: str
    ) -> tuple[list[_Column] | None, bool]:
        """Return the table's columns with the role's SELECT privilege, and whether RLS is enabled."""
        rows = await conn.fetch(
            """
            select a.attname, t.typname, c.relrowsecurity,
                   pg_catalog.has_column_privilege($2, a.attrelid, a.attname, 'SELECT') as selectable
            from pg_catalog.pg_attribute a
            join pg_catalog.pg_type t on t.oid = a.atttypid
            join pg_catalog.pg_class c on c.oid = a.attrelid
            where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped
            order by a.attnum
            """,
            qualified(schema, table),
            role,
        )
        if not rows:
            return None, False
        columns = [_Column(row["attname"], row["typname"], row["selectable"]) for row in rows]
        return columns, bool(rows[0]["relrowsecurity"])

    @staticmethod
    async def _passes_filter(
        conn: asyncpg.Connection, sub: Subscription, action: str, new: list[_Value], old: list[_Value]
    ) -> bool:
        flt = sub.binding.filter
        if flt is None:
            return True
        # INSERT and UPDATE test the new row; DELETE can only test the replica identity.
        values = old if action == "DELETE" else new
        column = next((value for value in values if value.name == flt.column), None)
        if column is None or column.jsonb is None:
            return False
        right = f"$2::text::{column.type_name}[]" if flt.op == "in" else f"$2::text::{column.type_name}"
        sql = f"select coalesce(($1::text::{column.type_name}) {flt.sql_operator} ({right}), false)"
        try:
            passed: bool = await conn.fetchval(sql, column.text, flt.value)
        except asyncpg.PostgresError:
            logger.warning("filter of binding %s failed to evaluate", sub.binding.id, exc_info=True)
            return False
        return passed

    @staticmethod
    async def _visible_to(
        conn: asyncpg.Connection, sub: Subscription, schema: str, table: str, new: list[_Value]
    ) -> bool:
        """Select the changed row by primary key as the subscriber: RLS decides whether it is seen."""
        keys = [value for value in new if value.is_pkey]
        conditions = " and ".join(
            f"{quote_ident(value.name)} = ${index}::text::{value.type_name}"
            for index, value in enumerate(keys, 1)
        )
        # Identifiers are quoted and type names come from PostgreSQL; the values travel as parameters.
        sql = f"select exists(select 1 from {qualified(schema, table)} where {conditions})"  # noqa: S608
        async with as_role(conn, dict(sub.claims)) as scoped:
            seen: bool = await scoped.fetchval(sql, *(value.text for value in keys))
        return seen
