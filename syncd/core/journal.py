"""The durable journal of accepted mutations: what one entry holds and how it is written as JSON.

An entry is written (``Append``) before its mutation is acknowledged and removed (``RemoveJournal``)
once the database holds it. After a restart the entries are replayed into a new engine
(`SyncEngine.restore`) and become pending edits again.

A reorder is journaled in its resolved form, `Reordered`: the order values it set. Replaying the
editor's ``Reorder`` on a changed server state could set other values than the ones acknowledged.
A ``Flush`` is not journaled: it has nothing to save.
"""

from dataclasses import dataclass
from typing import TypeAlias, assert_never

from syncd.core.ids import ClientId, MutationId, ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Patch
from syncd.core.values import JsonValue


@dataclass(frozen=True, slots=True)
class Reordered:
    """The resolved form of a ``Reorder``: the rows whose order value it changed, and the new values."""

    mid: int
    table: str
    positions: tuple[tuple[RowId, int], ...]


JournalMutation: TypeAlias = Patch | Insert | Delete | Reordered
"""A mutation as the journal keeps it."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted mutation of one project, waiting to reach the database.

    Attributes:
        project_id: the project it changes.
        client_id: its author.
        mid: its mutation id; equal to ``mutation.mid``.
        mutation: what to apply; inserts hold the ``project_id`` the engine filled in.

    Raises:
        ValueError: ``mid`` differs from ``mutation.mid``.
    """

    project_id: ProjectId
    client_id: ClientId
    mid: int
    mutation: JournalMutation

    def __post_init__(self) -> None:
        if self.mid != self.mutation.mid:
            raise ValueError(f"journal entry mid {self.mid} differs from its mutation's {self.mutation.mid}")

    @property
    def mutation_id(self) -> MutationId:
        """The ``(client_id, mid)`` pair."""
        return (self.client_id, self.mid)


def encode_mutation(mutation: JournalMutation) -> dict[str, JsonValue]:
    """Return the JSON object that stores a journaled mutation.

    Shapes: ``{"type": "patch", "mid", "table", "id", "set"}``, ``{"type": "insert", "mid", "table",
    "row"}``, ``{"type": "delete", "mid", "table", "id"}``, ``{"type": "reordered", "mid", "table",
    "positions": [[id, value], ...]}``.
    """
    match mutation:
        case Patch(mid, table, row_id, fields):
            return {"type": "patch", "mid": mid, "table": table, "id": row_id, "set": dict(fields)}
        case Insert(mid, table, row):
            return {"type": "insert", "mid": mid, "table": table, "row": dict(row)}
        case Delete(mid, table, row_id):
            return {"type": "delete", "mid": mid, "table": table, "id": row_id}
        case Reordered(mid, table, positions):
            return {
                "type": "reordered",
                "mid": mid,
                "table": table,
                "positions": [[row_id, value] for row_id, value in positions],
            }
        case _:
            assert_never(mutation)


def _str(data: dict[str, JsonValue], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} must be a string")
    return value


def _int(data: dict[str, JsonValue], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"field {name!r} must be an integer")
    return value


def _object(data: dict[str, JsonValue], name: str) -> dict[str, JsonValue]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"field {name!r} must be an object")
    return value


def _positions(data: dict[str, JsonValue]) -> tuple[tuple[RowId, int], ...]:
    raw = data.get("positions")
    if not isinstance(raw, list):
        raise ValueError("field 'positions' must be a list")
    out: list[tuple[RowId, int]] = []
    for item in raw:
        match item:
            case [str(row_id), int(value)] if not isinstance(value, bool):
                out.append((RowId(row_id), value))
            case _:
                raise ValueError("each position must be [id, integer]")
    return tuple(out)


def decode_mutation(data: JsonValue) -> JournalMutation:
    """Rebuild a journaled mutation from its JSON object.

    Raises:
        ValueError: the object is not one that `encode_mutation` writes; the message says why.
    """
    if not isinstance(data, dict):
        raise ValueError("a journaled mutation must be a JSON object")
    kind = data.get("type")
    mid = _int(data, "mid")
    table = _str(data, "table")
    if kind == "patch":
        return Patch(mid, table, RowId(_str(data, "id")), _object(data, "set"))
    if kind == "insert":
        return Insert(mid, table, _object(data, "row"))
    if kind == "delete":
        return Delete(mid, table, RowId(_str(data, "id")))
    if kind == "reordered":
        return Reordered(mid, table, _positions(data))
    raise ValueError(f"unknown mutation type {kind!r}")
