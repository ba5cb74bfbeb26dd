"""The write batch's JSON form, as ``syncd_apply`` takes it."""

from syncd.core.batch import DeleteRow, FieldWrite, InsertRow, UpdateRow, WriteBatch, encode_batch
from syncd.core.ids import ClientId, ProjectId, RowId

A = ClientId("a")


def test_encode_batch() -> None:
    """Every op kind, and the mutation list, have a plain JSON form."""
    batch = WriteBatch(
        ProjectId("p"),
        7,
        (
            DeleteRow("clips", RowId("c1"), (A, 1)),
            InsertRow("scenes", RowId("s1"), {"id": "s1", "project_id": "p"}, (A, 2)),
            UpdateRow(
                "projects",
                RowId("p"),
                {"title": FieldWrite("T", (A, 3)), "settings": FieldWrite({"x": 1}, (A, 4))},
            ),
        ),
        ((A, 1), (A, 2), (A, 3), (A, 4), (A, 5)),
    )
    assert encode_batch(batch) == {
        "project_id": "p",
        "batch_id": 7,
        "ops": [
            {"op": "delete", "table": "clips", "id": "c1", "by": ["a", 1]},
            {
                "op": "insert",
                "table": "scenes",
                "id": "s1",
                "row": {"id": "s1", "project_id": "p"},
                "by": ["a", 2],
            },
            {
                "op": "update",
                "table": "projects",
                "id": "p",
                "set": {
                    "title": {"value": "T", "by": ["a", 3]},
                    "settings": {"value": {"x": 1}, "by": ["a", 4]},
                },
            },
        ],
        "mutations": [["a", 1], ["a", 2], ["a", 3], ["a", 4], ["a", 5]],
    }


def test_empty_batch() -> None:
    """A batch that only records mutations has no ops."""
    assert encode_batch(WriteBatch(ProjectId("p"), 1, (), ((A, 1),)))["ops"] == []


def test_fence_is_sent_only_when_set() -> None:
    """A batch of cluster mode carries its owner's fencing token; one of single-process mode has none."""
    plain = WriteBatch(ProjectId("p"), 1, (), ((A, 1),))
    assert plain.fence is None
    assert "fence" not in encode_batch(plain)
    fenced = WriteBatch(ProjectId("p"), 2, (), ((A, 1),), fence=41)
    assert encode_batch(fenced) == {
        "project_id": "p",
        "batch_id": 2,
        "ops": [],
        "mutations": [["a", 1]],
        "fence": 41,
    }
