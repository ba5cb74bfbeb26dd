"""The engine's inputs: editor mutations, loads and re-reads, remote changes, write results.

Editor mutations carry what the editor sent, already parsed (the gateway checks JSON types); the
engine checks them against the schema and the live view and answers bad ones with an ``Error``
effect. Inputs from the adapters (rows, changes, results) are trusted; a row without ``id`` or
``version`` is a bug in the adapter and raises `ValueError`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from syncd.core.ids import ClientId, RowId
from syncd.core.schema import SideTable, Table
from syncd.core.values import Row, row_version
from syncd.wire import ChangeOp


def _check_row(row: Row) -> None:
    if not isinstance(row.get("id"), str):
        raise ValueError("a database row needs a string id")
    row_version(row)


@dataclass(frozen=True, slots=True)
class Patch:
    """Set fields of one row.

    Attributes:
        mid: the mutation id, strictly increasing per client.
        table: the table, as sent (checked by the engine).
        id: the row.
        set: field name to new value.
    """

    mid: int
    table: str
    id: RowId
    set: Row


@dataclass(frozen=True, slots=True)
class Insert:
    """Add a row to ``scenes`` or ``clips``; ``row`` must hold ``id``, the engine fills ``project_id``."""

    mid: int
    table: str
    row: Row


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove a row from ``scenes`` or ``clips``."""

    mid: int
    table: str
    id: RowId


@dataclass(frozen=True, slots=True)
class Reorder:
    """Put the listed rows first, in this order; the other rows follow in their current order."""

    mid: int
    table: str
    ids: tuple[RowId, ...]


@dataclass(frozen=True, slots=True)
class Flush:
    """Save the project now (the editor's "save" button)."""

    mid: int


Mutation: TypeAlias = Patch | Insert | Delete | Reorder | Flush
"""A mutation an editor sends, identified by ``(client_id, mid)``."""


@dataclass(frozen=True, slots=True)
class ProjectRows:
    """All synced rows of one project, as one read of the database returned them.

    Attributes:
        project: the ``projects`` row, or None when the project does not exist.
        scenes: the project's scenes, in any order.
        clips: the project's clips, in any order.
        applied: per client id, the highest mid the database recorded as applied in this project
            (``syncd_mutations``); the engine counts every mid up to it as accepted.

    Raises:
        ValueError: a row without ``id`` or ``version``, or an ``applied`` entry that is not a string
            client id with an integer mid.
    """

    project: Row | None
    scenes: tuple[Row, ...] = ()
    clips: tuple[Row, ...] = ()
    applied: Mapping[ClientId, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows():
            _check_row(row[1])
        for client_id, mid in self.applied.items():
            if not isinstance(client_id, str) or type(mid) is not int:
                raise ValueError(f"applied mids need a string client id and an integer mid: {client_id!r}")

    def rows(self) -> list[tuple[Table, Row]]:
        """Return every row with its table, the project first."""
        out: list[tuple[Table, Row]] = [] if self.project is None else [("projects", self.project)]
        out.extend(("scenes", row) for row in self.scenes)
        out.extend(("clips", row) for row in self.clips)
        return out


@dataclass(frozen=True, slots=True)
class RemoteUpsert:
    """A row as the database holds it after an insert or update by anyone (syncd included)."""

    table: Table
    row: Row

    def __post_init__(self) -> None:
        _check_row(self.row)


@dataclass(frozen=True, slots=True)
class RemoteDelete:
    """A row was deleted.

    Attributes:
        table: the row's table.
        id: the row.
        version: the deleted row's last ``version`` when the change source has it (Realtime does, with
            replica identity full); lets the engine ignore a late delete of an earlier incarnation.
    """

    table: Table
    id: RowId
    version: int | None = None


@dataclass(frozen=True, slots=True)
class SideChange:
    """A change to a row of a side table (an export, an audio file) of a project.

    Attributes:
        table: the row's table.
        op: what happened to it.
        id: the row.
        row: the whole row (insert only).
        set: the fields whose values changed (update only).
    """

    table: SideTable
    op: ChangeOp
    id: RowId
    row: Row | None = None
    set: Row | None = None


RemoteChange: TypeAlias = RemoteUpsert | RemoteDelete
"""A change to a row reported by the database's change feed: a hint, possibly late, lost or repeated."""


@dataclass(frozen=True, slots=True)
class WriteOk:
    """The database applied a write batch.

    Attributes:
        batch_id: the ``WriteBatch.batch_id`` this answers.
        rows: the full row after the write, for every row the batch touched that still exists.
        missing: rows the batch touched that no longer exist.
    """

    batch_id: int
    rows: tuple[tuple[Table, Row], ...] = ()
    missing: tuple[tuple[Table, RowId], ...] = ()

    def __post_init__(self) -> None:
        for _, row in self.rows:
            _check_row(row)


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """A write batch failed; nothing of it is assumed applied or not applied.

    Attributes:
        batch_id: the ``WriteBatch.batch_id`` this answers.
        retryable: a network error, timeout or 5xx (retry soon) rather than a rejection (retry rarely).
        message: for the daemon's log; never sent to editors.
    """

    batch_id: int
    retryable: bool
    message: str


WriteResult: TypeAlias = WriteOk | WriteFailed
"""The outcome of one ``WriteBatch``."""
