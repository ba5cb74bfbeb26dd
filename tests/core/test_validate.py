"""Checks of editor mutations, and the reorder rule."""

from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Patch, Reorder
from syncd.core.journal import Reordered
from syncd.core.schema import Table
from syncd.core.validate import Rejection, check_delete, check_insert, check_patch, order_key, resolve_reorder
from syncd.core.values import JsonValue

P = ProjectId("p")
VIEW: dict[tuple[Table, RowId], dict[str, JsonValue]] = {
    ("projects", RowId("p")): {"id": "p"},
    ("scenes", RowId("a")): {"id": "a", "scene_index": 0},
    ("scenes", RowId("b")): {"id": "b", "scene_index": 1},
    ("scenes", RowId("c")): {"id": "c", "scene_index": 2},
    ("clips", RowId("k")): {"id": "k", "order_index": 0},
}


def test_valid_mutations_resolve() -> None:
    """Valid mutations give what the engine applies."""
    assert check_patch(Patch(1, "scenes", RowId("a"), {"heading": "h"}), P, VIEW) == ("scenes", "a")
    assert check_patch(Patch(1, "projects", RowId("p"), {"title": "t"}), P, VIEW) == ("projects", "p")
    assert check_insert(Insert(1, "clips", {"id": "n", "prompt": "x"}), P, VIEW) == (
        "clips",
        "n",
        {"id": "n", "prompt": "x", "project_id": "p"},
    )
    assert check_delete(Delete(1, "clips", RowId("k")), VIEW) == ("clips", "k")


def test_rejections_name_the_problem() -> None:
    """Refusals carry the protocol's code and name the table, field or row."""
    assert check_patch(Patch(1, "scenes", RowId("a"), {"scene_id": "x"}), P, VIEW) == Rejection(
        "bad_request", "field 'scene_id' of table 'scenes' cannot be set"
    )
    assert check_delete(Delete(1, "exports", RowId("a")), VIEW) == Rejection(
        "bad_request", "table 'exports' is not synced"
    )
    assert check_insert(Insert(1, "clips", {"id": "k"}), P, VIEW) == Rejection(
        "conflict", "row 'k' already exists in table 'clips'"
    )


def test_reorder_moves_listed_rows_first() -> None:
    """Listed rows take the first positions; the rest keep their order; unchanged rows are left out."""
    assert resolve_reorder(Reorder(1, "scenes", (RowId("c"), RowId("a"))), VIEW) == Reordered(
        1, "scenes", ((RowId("c"), 0), (RowId("a"), 1), (RowId("b"), 2))
    )
    assert resolve_reorder(Reorder(2, "scenes", ()), VIEW) == Reordered(2, "scenes", ())


def test_order_key() -> None:
    """Rows sort by a numeric order value, then id; others go last."""
    assert order_key(RowId("a"), {"i": 3}, "i") == (3.0, "a")
    assert order_key(RowId("a"), {"i": True}, "i") == (float("inf"), "a")
    assert order_key(RowId("a"), {}, "i") == (float("inf"), "a")
