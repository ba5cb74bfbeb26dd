"""The client's copy of one project's live rows, built only from what the server sends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

from syncd.core.schema import ORDER_FIELD, Table

__all__ = ["ChildTable", "Frame", "ProjectView", "Row"]

Frame: TypeAlias = dict[str, Any]
"""One protocol frame, parsed from (or to be written as) a JSON object."""

Row: TypeAlias = dict[str, Any]
"""One row of ``projects``, ``scenes`` or ``clips`` as the server sends it, keyed by column name."""

ChildTable: TypeAlias = Literal["scenes", "clips"]
"""A table whose rows editors may insert, delete and reorder."""


class ProjectView:
    """The client's copy of one project's live rows, built from ``snapshot`` and ``change`` frames.

    ``project`` is the project row (None before the first snapshot); ``scenes`` and ``clips`` map row
    ids to rows. The rows are the client's own dicts: read them, don't change them.
    """

    def __init__(self) -> None:
        self.project: Row | None = None
        self.scenes: dict[str, Row] = {}
        self.clips: dict[str, Row] = {}
        self.sides: dict[str, dict[str, Row]] = {}
        """Rows of the stream's other tables (``exports``, ``audio_files``, ...), by table and id."""

    def rows(self, table: Table) -> dict[str, Row]:
        """Return the rows of ``table`` by id (for ``projects``: the project row, if any)."""
        if table == "scenes":
            return self.scenes
        if table == "clips":
            return self.clips
        if self.project is None:
            return {}
        return {str(self.project["id"]): self.project}

    def ordered(self, table: ChildTable) -> list[Row]:
        """Return the rows of ``table`` in the editor's order: by ``scene_index``/``order_index``, then id."""
        order_field = ORDER_FIELD[table]
        return sorted(self.rows(table).values(), key=lambda row: (row.get(order_field, 0), str(row["id"])))

    def as_dict(self) -> dict[str, Any]:
        """Return the view as ``{"project", "scenes", "clips"}`` with ordered row lists, to compare views."""
        return {"project": self.project, "scenes": self.ordered("scenes"), "clips": self.ordered("clips")}

    def reset(
        self,
        project: Row | None,
        scenes: Iterable[Row],
        clips: Iterable[Row],
        sides: Mapping[str, Iterable[Row]] | None = None,
    ) -> None:
        """Replace the whole view, as a ``snapshot`` does (``sides``: its lists of other tables)."""
        self.project = dict(project) if project is not None else None
        self.scenes = {str(row["id"]): dict(row) for row in scenes}
        self.clips = {str(row["id"]): dict(row) for row in clips}
        self.sides = {table: {str(r["id"]): dict(r) for r in rows} for table, rows in (sides or {}).items()}

    def apply(self, change: Frame) -> bool:
        """Apply one validated ``change`` frame.

        Returns:
            False when the change does not fit the view (an update of a row the view does not hold),
            which means the view has diverged from the server's; True otherwise.
        """
        table: Table = change["table"]
        op: str = change["op"]
        row_id: str = change["id"]
        if table == "projects":
            return self._apply_to_project(op, row_id, change)
        if table not in ("scenes", "clips"):
            self._apply_aside(table, op, row_id, change)
            return True
        rows = self.scenes if table == "scenes" else self.clips
        if op == "insert":
            rows[row_id] = {**change["row"], "id": row_id}
        elif op == "update":
            row = rows.get(row_id)
            if row is None:
                return False
            row.update(change["set"])
        else:
            rows.pop(row_id, None)
        return True

    def _apply_aside(self, table: str, op: str, row_id: str, change: Frame) -> None:
        """A change of a table the client does not sync: kept, and never a sign of divergence."""
        rows = self.sides.setdefault(table, {})
        if op == "insert":
            rows[row_id] = {**change["row"], "id": row_id}
        elif op == "update":
            rows[row_id] = {**rows.get(row_id, {"id": row_id}), **change["set"]}
        else:
            rows.pop(row_id, None)

    def _apply_to_project(self, op: str, row_id: str, change: Frame) -> bool:
        if op == "insert":
            self.project = {**change["row"], "id": row_id}
        elif op == "update":
            if self.project is None or self.project.get("id") != row_id:
                return False
            self.project.update(change["set"])
        elif self.project is not None and self.project.get("id") == row_id:
            self.project = None
        return True
