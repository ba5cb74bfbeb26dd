"""The ``postgres_changes`` bindings of a join: their ids, their parsing and the classic filter syntax.

A binding is what the client sends in ``config.postgres_changes``: ``event``, ``schema``, ``table`` and
``filter`` (``column=op.value``). Realtime echoes each binding in its join reply with an integer id and
parses it only afterwards, when it subscribes; a binding it cannot parse produces a ``system`` error
push, not a join error. This module holds that parsing, with Realtime's messages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[str, str] = {
    "eq": "=",
    "neq": "!=",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
    "in": "= any",
}
"""The classic filter operators and the SQL operator each one runs as (``in`` compares to an array)."""

ACTIONS = ("INSERT", "UPDATE", "DELETE")

MAX_IN_VALUES = 100
"""Realtime refuses an ``in`` filter with more values than this."""

_ID_SPACE = 2**27
"""Binding ids lie in [1, 2**27): the range of ``:erlang.phash2/1`` without 0, which no client can match."""


class BindingError(ValueError):
    """A binding the server cannot subscribe; the message is the text of the ``system`` error push."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One classic filter, ``column=op.value``.

    Attributes:
        column: The column name, compared as written.
        op: One of :data:`OPERATORS`.
        value: The value text; for ``in`` it is a PostgreSQL array literal such as ``{a,b}``.
    """

    column: str
    op: str
    value: str

    @property
    def sql_operator(self) -> str:
        """The SQL operator that evaluates this filter."""
        return OPERATORS[self.op]

    def describe(self) -> str:
        """Render the filter as Realtime logs it, e.g. ``{"project_id", "eq", "10"}``."""
        return (
            "{"
            + ", ".join(json.dumps(part, ensure_ascii=False) for part in (self.column, self.op, self.value))
            + "}"
        )


@dataclass(frozen=True, slots=True)
class Binding:
    """A parsed binding of one channel.

    Attributes:
        id: The integer id echoed in the join reply and listed in ``ids`` of matching changes.
        action: ``*`` or one of :data:`ACTIONS`.
        schema: The schema name, or ``*`` for every schema.
        table: The table name, or ``*`` for every table of the schema.
        filter: The filter, if any.
    """

    id: int
    action: str
    schema: str
    table: str
    filter: Filter | None

    def describe(self) -> str:
        """Render the binding's parameters the way Realtime's subscription errors list them."""
        filters = "[" + (self.filter.describe() if self.filter else "") + "]"
        return (
            f"event: {self.action}, schema: {self.schema}, table: {self.table}, "
            f"filters: {filters}, select: nil"
        )


def binding_id(raw: dict[str, Any]) -> int:
    """Return the stable, non-zero id of a binding as the client sent it.

    Equal bindings get equal ids, as with Realtime's hash of the binding map, and 0 never occurs because
    realtime-py ignores changes for a binding whose id is falsy.
    """
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).digest()
    return int.from_bytes(digest[:8], "big") % (_ID_SPACE - 1) + 1


def _inspect_list(parts: list[str]) -> str:
    """Render a list of strings the way Elixir's ``inspect`` does, e.g. ``["foo", "hey"]``."""
    return "[" + ", ".join(json.dumps(part, ensure_ascii=False) for part in parts) + "]"


def parse_filter(text: str) -> Filter:
    """Parse a classic filter: everything after ``op.`` is the value, commas included.

    Raises:
        BindingError: unknown operator, missing ``=`` or ``.``, or an ``in`` value without parentheses.
    """
    column_and_rest = text.split("=", 1)
    if len(column_and_rest) != 2:
        raise BindingError(f"Error parsing `filter` params: {_inspect_list(column_and_rest)}")
    column, rest = column_and_rest
    op_and_value = rest.split(".", 1)
    if len(op_and_value) != 2 or op_and_value[0] not in OPERATORS:
        raise BindingError(f"Error parsing `filter` params: {_inspect_list(op_and_value)}")
    op, value = op_and_value
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")) or len(value) < 2:
            raise BindingError(
                "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"
            )
        # Realtime hands the list to PostgreSQL's array parser as it is: "(a,b)" becomes "{a,b}".
        value = "{" + value[1:-1] + "}"
    return Filter(column=column, op=op, value=value)


def _action(raw: dict[str, Any]) -> str:
    event = raw.get("event")
    if isinstance(event, str) and event.upper() in ACTIONS:
        return event.upper()
    # Realtime subscribes an unknown or missing event to every action; realtime-py filters by event itself.
    return "*"


def parse_binding(raw: Any) -> Binding:
    """Parse one element of ``config.postgres_changes``.

    The accepted shapes follow Realtime: ``schema`` + ``table`` [+ ``filter``], ``schema`` alone (every
    table of the schema), or ``table`` alone (schema ``public``).

    Raises:
        BindingError: the binding has none of those shapes, a bad filter, or asks for ``select``, which
            this server does not implement.
    """
    if not isinstance(raw, dict):
        raise BindingError(
            "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: "
            + json.dumps(raw)
        )
    if raw.get("select") is not None:
        raise BindingError("Error parsing `select` params: column selection is not supported by this server")
    identity = binding_id(raw)
    action = _action(raw)
    schema, table, filter_text = raw.get("schema"), raw.get("table"), raw.get("filter")
    strings = all(value is None or isinstance(value, str) for value in (schema, table, filter_text))
    if strings and isinstance(schema, str) and isinstance(table, str):
        parsed = parse_filter(filter_text) if filter_text is not None and filter_text.strip() else None
        return Binding(identity, action, schema, table, parsed)
    if strings and isinstance(schema, str) and table is None and filter_text is None:
        return Binding(identity, action, schema, "*", None)
    if strings and isinstance(table, str) and schema is None and filter_text is None:
        return Binding(identity, action, "public", table, None)
    shown = {key: value for key, value in raw.items() if key not in ("access_token", "user_token")}
    raise BindingError(
        "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: "
        + json.dumps(shown, ensure_ascii=False)
    )
