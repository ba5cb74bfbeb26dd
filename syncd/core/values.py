"""JSON values and rows as the core sees them.

The core never mutates a value it was given and never deep-copies one: callers must not mutate a
row or value after handing it to the engine, and must not mutate what the effects carry.
"""

from collections.abc import Mapping
from typing import TypeAlias

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
"""Any value that JSON can carry."""

Row: TypeAlias = Mapping[str, JsonValue]
"""One row of a synced table, column name to value. Rows from the database hold ``id`` and ``version``."""

VERSION_FIELD = "version"
"""The column that the database raises on every update; syncd's own bookkeeping, never sent to editors."""


def row_version(row: Row) -> int:
    """Return the ``version`` of a database row.

    Args:
        row: a row as the database returned it.

    Raises:
        ValueError: the row has no integer ``version`` (a bug in the adapter that built it).
    """
    version = row.get(VERSION_FIELD)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"row {row.get('id')!r} has no integer version")
    return version


def visible(row: Row) -> dict[str, JsonValue]:
    """Return a fresh copy of a row as editors see it: every field except ``version``."""
    out = dict(row)
    out.pop(VERSION_FIELD, None)
    return out


def encoded_size(value: JsonValue) -> int:
    """Roughly how many bytes ``value`` takes as compact UTF-8 JSON, without encoding it.

    Strings count their UTF-8 length (exact for what needs no escape), numbers a fixed 8 bytes: an
    estimate good enough for a byte budget, and cheap next to an encoding.
    """
    if isinstance(value, str):
        return len(value) + 2 if value.isascii() else len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int | float):
        return 8
    if isinstance(value, list):
        return 2 + sum(encoded_size(item) + 1 for item in value)
    return row_size(value)


def row_size(row: Row) -> int:
    """`encoded_size` of a row (or of any JSON object)."""
    return 2 + sum(encoded_size(key) + encoded_size(item) + 2 for key, item in row.items())
