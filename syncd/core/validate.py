"""Checks of an editor's mutation against the schema and the live view.

Each check returns what the engine needs to apply the mutation, or a `Rejection` that the engine
turns into an ``Error`` effect. Nothing here raises on bad input.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Patch, Reorder
from syncd.core.journal import Reordered
from syncd.core.schema import CHILD_TABLES, EDITABLE_FIELDS, ORDER_FIELD, TABLES, Table, table_named
from syncd.core.values import JsonValue
from syncd.wire import ErrorCode

View = Mapping[tuple[Table, RowId], Mapping[str, JsonValue]]
"""The live rows of one project by ``(table, id)``, as editors see them."""

INSERTABLE_EXTRA = frozenset({"id", "project_id"})
"""Fields an insert row may hold besides the editable ones."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a mutation is refused: an error code and a message for the editor."""

    code: ErrorCode
    message: str


def _table(table: str, op: str, allowed: tuple[Table, ...]) -> Table | Rejection:
    try:
        known = table_named(table)
    except ValueError:
        return Rejection("bad_request", f"table {table!r} is not synced")
    if known in allowed:
        return known
    return Rejection("bad_request", f"{op} is not allowed on table {table!r}")


def _unknown_field(table: Table, fields: Mapping[str, JsonValue], extra: frozenset[str]) -> Rejection | None:
    editable = EDITABLE_FIELDS[table]
    if editable.issuperset(fields):
        return None
    for name in fields:
        if name not in editable and name not in extra:
            return Rejection("bad_request", f"field {name!r} of table {table!r} cannot be set")
    return None


def check_patch(patch: Patch, project_id: ProjectId, view: View) -> tuple[Table, RowId] | Rejection:
    """Return the key of the row a patch changes, or why it is refused."""
    table = _table(patch.table, "patch", TABLES)
    if isinstance(table, Rejection):
        return table
    if not patch.set:
        return Rejection("bad_request", "patch sets no field")
    bad = _unknown_field(table, patch.set, frozenset())
    if bad is not None:
        return bad
    if table == "projects" and patch.id != RowId(project_id):
        return Rejection("forbidden", "only this connection's project can be patched")
    key = (table, patch.id)
    if key not in view:
        return Rejection("not_found", f"no row {patch.id!r} in table {table!r}")
    return key


def check_insert(
    insert: Insert, project_id: ProjectId, view: View
) -> tuple[Table, RowId, Mapping[str, JsonValue]] | Rejection:
    """Return the key and the row to insert (with ``project_id`` filled in), or why it is refused."""
    table = _table(insert.table, "insert", CHILD_TABLES)
    if isinstance(table, Rejection):
        return table
    row_id = insert.row.get("id")
    if not isinstance(row_id, str) or not row_id:
        return Rejection("bad_request", "an inserted row needs a string id")
    owner = insert.row.get("project_id", project_id)
    if owner != project_id:
        return Rejection("forbidden", "a row can only be inserted into this connection's project")
    bad = _unknown_field(table, insert.row, INSERTABLE_EXTRA)
    if bad is not None:
        return bad
    key = (table, RowId(row_id))
    if key in view:
        return Rejection("conflict", f"row {row_id!r} already exists in table {table!r}")
    row = insert.row if "project_id" in insert.row else {**insert.row, "project_id": project_id}
    return table, RowId(row_id), row


def check_delete(delete: Delete, view: View) -> tuple[Table, RowId] | Rejection:
    """Return the key of the row to delete, or why it is refused."""
    table = _table(delete.table, "delete", CHILD_TABLES)
    if isinstance(table, Rejection):
        return table
    key = (table, delete.id)
    if key not in view:
        return Rejection("not_found", f"no row {delete.id!r} in table {table!r}")
    return key


def order_key(row_id: RowId, row: Mapping[str, JsonValue], field: str) -> tuple[float, RowId]:
    """Sort key of a row by its order field, ties by id; rows without a numeric value go last."""
    value = row.get(field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value), row_id)
    return (math.inf, row_id)


def resolve_reorder(reorder: Reorder, view: View) -> Reordered | Rejection:
    """Return the order values a reorder changes, or why it is refused.

    The listed rows take positions 0, 1, ...; the other rows of the table follow in their current
    order. Only rows whose order value changes are in the result.
    """
    table = _table(reorder.table, "reorder", CHILD_TABLES)
    if isinstance(table, Rejection):
        return table
    if len(set(reorder.ids)) != len(reorder.ids):
        return Rejection("bad_request", "reorder lists an id twice")
    for row_id in reorder.ids:
        if (table, row_id) not in view:
            return Rejection("not_found", f"no row {row_id!r} in table {table!r}")
    field = ORDER_FIELD[table]
    listed = set(reorder.ids)
    rest = sorted(
        (order_key(row_id, row, field), row_id)
        for (row_table, row_id), row in view.items()
        if row_table == table and row_id not in listed
    )
    order = [*reorder.ids, *(row_id for _, row_id in rest)]
    positions = tuple(
        (row_id, index) for index, row_id in enumerate(order) if view[(table, row_id)].get(field) != index
    )
    return Reordered(reorder.mid, table, positions)
