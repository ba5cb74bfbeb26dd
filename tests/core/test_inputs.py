"""Inputs: rows from the adapters must carry an id and a version."""

import pytest

from syncd.core.ids import RowId
from syncd.core.inputs import Patch, ProjectRows, RemoteDelete, RemoteUpsert, WriteFailed, WriteOk
from syncd.core.values import JsonValue


def test_project_rows_lists_the_project_first() -> None:
    """All rows of a read come with their table, the project first."""
    project: dict[str, JsonValue] = {"id": "p", "version": 1}
    scene: dict[str, JsonValue] = {"id": "s", "version": 1}
    clip: dict[str, JsonValue] = {"id": "c", "version": 2}
    rows = ProjectRows(project, (scene,), (clip,))
    assert rows.rows() == [("projects", project), ("scenes", scene), ("clips", clip)]
    assert ProjectRows(None).rows() == []


@pytest.mark.parametrize("row", [{"version": 1}, {"id": 5, "version": 1}, {"id": "x"}])
def test_rows_without_id_or_version_are_refused(row: dict[str, object]) -> None:
    """A row without a string id or an integer version is an adapter bug."""
    with pytest.raises(ValueError, match=r"id|version"):
        RemoteUpsert("scenes", row)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"id|version"):
        ProjectRows({"id": "p", "version": 1}, (row,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"id|version"):
        WriteOk(1, (("scenes", row),))  # type: ignore[arg-type]


def test_inputs_are_frozen() -> None:
    """Inputs cannot be changed after they are made."""
    patch = Patch(1, "scenes", RowId("s"), {"heading": "h"})
    with pytest.raises(AttributeError):
        patch.mid = 2  # type: ignore[misc]
    assert RemoteDelete("scenes", RowId("s")).version is None
    assert WriteFailed(1, True, "timeout").retryable
