"""The write batch: one flush of one project, applied by the database in one transaction.

A `WriteBatch` is what the engine asks the writer to apply (Postgres: ``syncd_apply(batch jsonb)``;
the embedded backend: the same rule in one SQLite transaction). `encode_batch` gives its JSON form.

``ops`` holds coalesced row operations, in this order:

1. every `DeleteRow` (``clips`` before ``scenes``),
2. every `InsertRow` (``scenes`` before ``clips``, so a clip may point at a scene of the same batch),
3. every `UpdateRow` (``projects``, ``scenes``, ``clips``).

Within a group, rows keep the order in which the project first changed them. A row has at most one
op of each kind; a row with a delete and an insert is one the editor deleted and inserted again
(undo), and the database must delete it before it inserts it. Each written value carries ``by``:
the ``(client_id, mid)`` of the mutation that set it last.

``mutation_ids`` lists every mutation the batch covers, including those that left no op behind (an
insert deleted again before the flush, a patch superseded by a later one, edits dropped by a remote
delete).

The record keeps only each client's highest applied mid, because the engine sends a client's mutations
in one order: it accepts a client's mids of a project strictly increasing, one save of a project runs at
a time and takes every edit accepted before it, and a failed save is sent again with the newer edits
added. So the applied mids of a client are all of its accepted mids up to the highest, and the record
grows with a project's clients, not with its edits.

Apply rule, in one transaction:

- skip a delete, an insert or a single field whose ``by`` counts as applied in the batch's project: its
  mid is at or below the one ``syncd_mutations`` records for its client there (an earlier attempt of the
  same edits applied it; the writer's retry must not apply it twice). The record is keyed by
  ``(project_id, client_id)``: client ids are public, so the same ``(client_id, mid)`` in another
  project is another mutation;
- a delete of a missing row, or an update of a missing row, is not an error: report the row in
  ``missing``;
- an insert whose id exists is not an error: leave the row as it is and return it when it is this
  project's; a row of another project is left untouched and reported in ``missing``, like a row
  deleted meanwhile (nothing of it is returned);
- record, per client of ``mutation_ids``, its highest mid there in ``syncd_mutations`` with the batch's
  project, unless a higher one is recorded already;
- answer with the full row after the write for every touched row that exists (``rows``, with its
  ``version``) and the touched rows that do not (``missing``): see `syncd.core.inputs.WriteOk`.

Fencing (cluster mode, docs/scaling.md): a batch may carry ``fence``, the fencing token of the
instance that owns the project. The database keeps the highest token it has seen per project and
refuses, changing nothing, a batch whose ``fence`` is below it (``stale owner``); a batch without
``fence`` is not checked (single-process mode).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias, assert_never

from syncd.core.ids import MutationId, ProjectId, RowId
from syncd.core.schema import Table
from syncd.core.values import JsonValue, Row


@dataclass(frozen=True, slots=True)
class FieldWrite:
    """One field's new value and the mutation that set it last."""

    value: JsonValue
    by: MutationId


@dataclass(frozen=True, slots=True)
class InsertRow:
    """Insert ``row`` (it holds ``id`` and ``project_id``) unless ``by`` is recorded or the id exists."""

    table: Table
    id: RowId
    row: Row
    by: MutationId


@dataclass(frozen=True, slots=True)
class UpdateRow:
    """Set each field whose ``by`` is not recorded; the row must exist (else it is reported missing)."""

    table: Table
    id: RowId
    fields: Mapping[str, FieldWrite]


@dataclass(frozen=True, slots=True)
class DeleteRow:
    """Delete the row unless ``by`` is recorded; a missing row is reported missing."""

    table: Table
    id: RowId
    by: MutationId


RowOp: TypeAlias = DeleteRow | InsertRow | UpdateRow
"""One coalesced operation on one row."""


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """Effect: apply these ops in one transaction and answer with ``receive_write_result``.

    Attributes:
        project_id: the project whose edits these are.
        batch_id: unique per engine; a retry of the same edits gets a new id.
        ops: the coalesced row operations, in apply order (see the module docstring).
        mutation_ids: every mutation the batch covers, in the order they were accepted.
        fence: the owner's fencing token in cluster mode; None in single-process mode.
    """

    project_id: ProjectId
    batch_id: int
    ops: tuple[RowOp, ...]
    mutation_ids: tuple[MutationId, ...]
    fence: int | None = None


def _by(by: MutationId) -> list[JsonValue]:
    return [by[0], by[1]]


def encode_op(op: RowOp) -> dict[str, JsonValue]:
    """Return the JSON object for one op.

    Shapes: ``{"op": "delete", "table", "id", "by": [client_id, mid]}``, ``{"op": "insert", "table",
    "id", "row": {...}, "by"}``, ``{"op": "update", "table", "id", "set": {field: {"value", "by"}}}``.
    """
    match op:
        case DeleteRow(table, row_id, by):
            return {"op": "delete", "table": table, "id": row_id, "by": _by(by)}
        case InsertRow(table, row_id, row, by):
            return {"op": "insert", "table": table, "id": row_id, "row": dict(row), "by": _by(by)}
        case UpdateRow(table, row_id, fields):
            written: dict[str, JsonValue] = {
                name: {"value": write.value, "by": _by(write.by)} for name, write in fields.items()
            }
            return {"op": "update", "table": table, "id": row_id, "set": written}
        case _:
            assert_never(op)


def encode_batch(batch: WriteBatch) -> dict[str, JsonValue]:
    """Return the JSON object that ``syncd_apply`` takes: ``{"project_id", "batch_id", "ops", "mutations"}``.

    ``mutations`` is a list of ``[client_id, mid]`` pairs. ``"fence"`` is added when the batch has one.
    """
    encoded: dict[str, JsonValue] = {
        "project_id": batch.project_id,
        "batch_id": batch.batch_id,
        "ops": [encode_op(op) for op in batch.ops],
        "mutations": [_by(mutation_id) for mutation_id in batch.mutation_ids],
    }
    if batch.fence is not None:
        encoded["fence"] = batch.fence
    return encoded
