"""Pending writes to one row, and how they coalesce.

A project keeps its edits in layers over the last known database row: the edits of the batch in
flight, and above them the edits made since. Each layer holds one `RowEdit` per row. A `RowEdit`
reads like the database will apply it: maybe delete the row, maybe insert it anew, then set fields.
"""

from dataclasses import dataclass, field
from typing import TypeAlias

from syncd.core.batch import DeleteRow, FieldWrite, InsertRow, RowOp, UpdateRow
from syncd.core.ids import MutationId, RowId
from syncd.core.schema import Table
from syncd.core.values import JsonValue, Row

Written: TypeAlias = tuple[JsonValue, MutationId]
"""A field's pending value and the mutation that set it (a `FieldWrite` once it goes in a batch)."""


@dataclass(frozen=True, slots=True)
class Insertion:
    """A row to insert, and the mutation that inserted it."""

    row: Row
    by: MutationId


@dataclass(slots=True)
class RowEdit:
    """The writes one layer makes to one row, in apply order: delete, insert, fields.

    Attributes:
        delete: delete the row below first (by this mutation).
        insert: then insert this row.
        fields: then set these fields.
        maybe_exists: an insert of this row may already be in the database (it was sent in a batch
            whose result was lost, or replayed from the journal), so a later delete must be sent
            even if the server state has no such row.
    """

    delete: MutationId | None = None
    insert: Insertion | None = None
    fields: dict[str, Written] = field(default_factory=dict)
    maybe_exists: bool = False

    def apply(self, below: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        """Return the row as this edit leaves it, given the row below (None: absent).

        ``below`` is not modified; the result may be ``below`` itself when the edit changes nothing.
        """
        row = None if self.delete is not None else below
        if self.insert is not None and row is None:
            # As the database applies it: an insert whose row exists leaves that row as it is (a
            # replayed insert that an earlier attempt already applied).
            row = dict(self.insert.row)
        if row is None or not self.fields:
            return row
        if row is below:
            row = dict(row)
        for name, (value, _) in self.fields.items():
            row[name] = value
        return row

    def set_fields(self, values: Row, by: MutationId) -> None:
        """Record a patch (or reorder) of these fields."""
        fields = self.fields
        for name, value in values.items():
            fields[name] = (value, by)

    def set_insert(self, row: Row, by: MutationId) -> None:
        """Record an insert; earlier field writes of this layer no longer matter."""
        self.insert = Insertion(row, by)
        self.fields = {}

    def deleted(self, by: MutationId, *, exists_below: bool) -> "RowEdit | None":
        """Return the edit after a delete by ``by``; None when the row's writes cancel out.

        An insert of this layer that never reached the database, deleted again, leaves nothing to
        write (its mutation ids are still recorded by the batch).
        """
        if self.insert is not None and self.delete is None and not exists_below and not self.maybe_exists:
            return None
        return RowEdit(delete=by, maybe_exists=self.maybe_exists)

    def authors(self) -> set[MutationId]:
        """The mutations whose writes this edit still holds."""
        out = {by for _, by in self.fields.values()}
        if self.insert is not None:
            out.add(self.insert.by)
        if self.delete is not None:
            out.add(self.delete)
        return out

    def ops(self, table: Table, row_id: RowId) -> tuple[DeleteRow | None, InsertRow | None, UpdateRow | None]:
        """Return this edit's delete, insert and update ops (each may be None)."""
        delete = None if self.delete is None else DeleteRow(table, row_id, self.delete)
        insert = None if self.insert is None else InsertRow(table, row_id, self.insert.row, self.insert.by)
        update = None
        if self.fields:
            update = UpdateRow(
                table, row_id, {name: FieldWrite(*written) for name, written in self.fields.items()}
            )
        return delete, insert, update


def compose(older: RowEdit, newer: RowEdit | None) -> RowEdit:
    """Merge a failed batch's edit of a row (``older``) back under the edits made since (``newer``).

    The result applies like ``older`` then ``newer``: ``newer`` wins per field, a delete in ``newer``
    wins over everything in ``older``. Whatever ``older`` inserted may already be in the database.
    """
    maybe_exists = older.maybe_exists or older.insert is not None
    if newer is None:
        return RowEdit(older.delete, older.insert, dict(older.fields), maybe_exists)
    maybe_exists = maybe_exists or newer.maybe_exists
    if newer.delete is not None:
        return RowEdit(newer.delete, newer.insert, dict(newer.fields), maybe_exists)
    if newer.insert is not None:
        return RowEdit(older.delete, newer.insert, dict(newer.fields), maybe_exists)
    return RowEdit(older.delete, older.insert, {**older.fields, **newer.fields}, maybe_exists)


def order_ops(edits: dict[tuple[Table, RowId], RowEdit]) -> tuple[RowOp, ...]:
    """Return the ops of a layer in the batch's apply order (see `syncd.core.batch`)."""
    deletes: dict[Table, list[RowOp]] = {"projects": [], "scenes": [], "clips": []}
    inserts: dict[Table, list[RowOp]] = {"projects": [], "scenes": [], "clips": []}
    updates: dict[Table, list[RowOp]] = {"projects": [], "scenes": [], "clips": []}
    for (table, row_id), edit in edits.items():
        delete, insert, update = edit.ops(table, row_id)
        if delete is not None:
            deletes[table].append(delete)
        if insert is not None:
            inserts[table].append(insert)
        if update is not None:
            updates[table].append(update)
    return (
        *deletes["clips"],
        *deletes["scenes"],
        *inserts["scenes"],
        *inserts["clips"],
        *updates["projects"],
        *updates["scenes"],
        *updates["clips"],
    )
