"""Turning a channel's bindings into subscriptions, checked in SQL the way Realtime's insert trigger does.

Realtime inserts one ``realtime.subscription`` row per binding and publication table; the rows come from
``pg_publication_tables``, so a table outside ``supabase_realtime`` yields no row ("Unable to subscribe").
A BEFORE trigger then checks that the filter column exists and is SELECTable by the subscriber's role and
that the filter value casts to the column's type. This stand-in keeps the subscriptions in memory but runs
the same checks against the database and reports the same messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from localsupabase.filters import MAX_IN_VALUES, Binding

PUBLICATION = "supabase_realtime"


class SubscribeError(Exception):
    """Subscribing failed; ``message`` is the text of the ``system`` error push.

    Args:
        message: The text for the client.
        retry: Whether Realtime would try again later (database trouble) rather than give up (bad params).
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Subscription:
    """One binding applied to one publication table, with the claims of its subscriber.

    Attributes:
        binding: The parsed binding.
        schema: The concrete schema of the table.
        table: The concrete table name.
        claims: The JWT claims of the subscriber; ``claims["role"]`` is the database role.
        owner: The channel that receives the matching changes (opaque here).
    """

    binding: Binding
    schema: str
    table: str
    claims: Mapping[str, Any] = field(compare=False)
    owner: object = field(compare=False)

    @property
    def role(self) -> str:
        """The database role whose privileges and policies apply to this subscriber."""
        return str(self.claims["role"])


def quote_ident(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """Return ``"schema"."table"`` for use in SQL text and ``::regclass`` casts."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def _condition_name(exc: asyncpg.PostgresError) -> str:
    """Return the condition name of an error as Postgrex prints it, e.g. ``invalid_text_representation``."""
    if exc.sqlstate == "P0001":
        return "raise_exception"
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _exception_text(binding: Binding, error: str) -> str:
    return (
        "Unable to subscribe to changes with given parameters. An exception happened so please check your "
        f"connect parameters: [{binding.describe()}]. Exception: {error}"
    )


def _raised(binding: Binding, message: str) -> SubscribeError:
    return SubscribeError(_exception_text(binding, f"ERROR P0001 (raise_exception) {message}"))


async def _publication_tables(conn: asyncpg.Connection, binding: Binding) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """
        select schemaname, tablename
        from pg_catalog.pg_publication_tables
        where pubname = $1
          and schemaname like (case $2 when '*' then '%' else $2 end) escape ''
          and tablename like (case $3 when '*' then '%' else $3 end) escape ''
        order by schemaname, tablename
        """,
        PUBLICATION,
        binding.schema,
        binding.table,
    )
    return [(row["schemaname"], row["tablename"]) for row in rows]


async def _check_filter(
    conn: asyncpg.Connection, binding: Binding, schema: str, table: str, role: str
) -> None:
    flt = binding.filter
    assert flt is not None
    column = await conn.fetchrow(
        """
        select format_type(a.atttypid, null) as type_name,
               pg_catalog.has_column_privilege($3, a.attrelid, a.attname, 'SELECT') as selectable
        from pg_catalog.pg_attribute a
        where a.attrelid = $1::regclass and a.attname = $2 and a.attnum > 0 and not a.attisdropped
        """,
        qualified(schema, table),
        flt.column,
        role,
    )
    if column is None or not column["selectable"]:
        raise _raised(binding, f"invalid column for filter {flt.column}")
    # The type name comes from PostgreSQL's own output function, which quotes whatever needs quoting.
    type_name: str = column["type_name"]
    try:
        if flt.op == "in":
            count = await conn.fetchval(f"select cardinality($1::text::{type_name}[])", flt.value)
            if count is not None and count > MAX_IN_VALUES:
                raise _raised(binding, f"too many values for `in` filter. Maximum {MAX_IN_VALUES}")
        else:
            await conn.fetchval(f"select $1::text::{type_name}", flt.value)
    except asyncpg.PostgresError as exc:
        raise SubscribeError(
            _exception_text(binding, f"ERROR {exc.sqlstate} ({_condition_name(exc)}) {exc}")
        ) from exc


async def subscribe(
    conn: asyncpg.Connection,
    bindings: Sequence[Binding],
    claims: Mapping[str, Any],
    owner: object,
) -> list[Subscription]:
    """Check every binding against the database and return the subscriptions of the channel.

    One bad binding fails the whole channel, as Realtime inserts all of a channel's rows in one
    transaction.

    Raises:
        SubscribeError: a table is missing from the publication, a filter column is missing or not
            SELECTable, or a filter value does not cast to the column type.
    """
    role = str(claims["role"])
    subscriptions: list[Subscription] = []
    for binding in bindings:
        tables = await _publication_tables(conn, binding)
        if not tables:
            raise SubscribeError(
                "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for "
                f"the given connect parameters: [{binding.describe()}]"
            )
        for schema, table in tables:
            if binding.filter is not None:
                await _check_filter(conn, binding, schema, table, role)
            subscriptions.append(Subscription(binding, schema, table, claims, owner))
    return subscriptions
