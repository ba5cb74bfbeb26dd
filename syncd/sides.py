"""The side rows of the open projects: their exports and audio files, as the editors see them.

Editors follow these rows but do not edit them, so the engine keeps none of them: the host keeps them
here, puts them in every ``snapshot`` (``exports``, ``audio_files``), and hands each change to the
engine as a :class:`~syncd.core.inputs.SideChange`, which gives it the project's next seq.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncd.core.ids import RowId
from syncd.core.inputs import SideChange
from syncd.core.schema import SIDE_TABLES, SideTable
from syncd.wire import ChangeOp

Row = dict[str, Any]


class SideRows:
    """Exports and audio files by project, table and id."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[SideTable, dict[str, Row]]] = {}

    def __contains__(self, project_id: object) -> bool:
        return project_id in self._rows

    def load(self, project_id: str, tables: Mapping[SideTable, Sequence[Row]]) -> None:
        """Hold a project's side rows as one read returned them."""
        self._rows[project_id] = {t: {str(r["id"]): dict(r) for r in tables.get(t, ())} for t in SIDE_TABLES}

    def drop(self, project_id: str) -> None:
        """Forget a closed project's rows."""
        self._rows.pop(project_id, None)

    def lists(self, project_id: str) -> dict[str, list[Row]]:
        """A project's side rows for a snapshot, oldest first."""
        held = self._rows.get(project_id, {})
        return {
            table: sorted(
                held.get(table, {}).values(), key=lambda r: (str(r.get("created_at")), str(r["id"]))
            )
            for table in SIDE_TABLES
        }

    def change(self, project_id: str, table: SideTable, op: ChangeOp, row: Row) -> SideChange | None:
        """Apply a change to a held row; return it as the editors get it (None: nothing they see changed).

        A change of a project whose rows are not held (closed, or still loading) is not kept: its
        load reads them.
        """
        held = self._rows.get(project_id)
        if held is None:
            return None
        rows = held[table]
        row_id = str(row["id"])
        old = rows.get(row_id)
        if op == "delete":
            if rows.pop(row_id, None) is None:
                return None
            return SideChange(table, "delete", RowId(row_id))
        rows[row_id] = dict(row)
        if old is None:
            return SideChange(table, "insert", RowId(row_id), row=dict(row))
        changed = {k: v for k, v in row.items() if old.get(k) != v}
        return SideChange(table, "update", RowId(row_id), set=changed) if changed else None

    def replace(self, project_id: str, tables: Mapping[SideTable, Sequence[Row]]) -> list[SideChange]:
        """Take a fresh read of a project's side rows; return the changes it makes visible."""
        if project_id not in self._rows:
            return []
        changes: list[SideChange] = []
        for table in SIDE_TABLES:
            fresh = {str(r["id"]): r for r in tables.get(table, ())}
            for row_id, old in list(self._rows[project_id][table].items()):
                if row_id not in fresh:
                    found = self.change(project_id, table, "delete", old)
                    changes.extend([found] if found else [])
            for row in fresh.values():
                found = self.change(project_id, table, "update", row)
                changes.extend([found] if found else [])
        return changes
