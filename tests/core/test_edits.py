"""RowEdit: apply, coalescing, merging a failed batch back, and batch op order."""

from syncd.core.batch import DeleteRow, FieldWrite, InsertRow, UpdateRow
from syncd.core.edits import Insertion, RowEdit, compose, order_ops
from syncd.core.ids import ClientId, RowId
from syncd.core.schema import Table
from syncd.core.values import JsonValue

A = ClientId("a")
BASE: dict[str, JsonValue] = {"id": "x", "heading": "base", "body": "b"}


def test_apply_layers() -> None:
    """Delete, insert and fields apply in that order; the row below is never modified."""
    below = dict(BASE)
    assert RowEdit().apply(below) is below
    patched = RowEdit(fields={"heading": ("new", (A, 1))}).apply(below)
    assert patched == {"id": "x", "heading": "new", "body": "b"}
    assert below == BASE
    assert RowEdit(delete=(A, 1)).apply(below) is None
    inserted = RowEdit(delete=(A, 1), insert=Insertion({"id": "x"}, (A, 2)), fields={"body": ("z", (A, 3))})
    assert inserted.apply(below) == {"id": "x", "body": "z"}
    assert RowEdit(fields={"heading": ("new", (A, 1))}).apply(None) is None


def test_insert_over_an_existing_row_keeps_that_row() -> None:
    """An insert whose row exists leaves the row as it is, as the database does; later fields still apply."""
    below = dict(BASE)
    again = RowEdit(insert=Insertion({"id": "x", "heading": "mine"}, (A, 1)))
    assert again.apply(below) == BASE
    patched = RowEdit(insert=Insertion({"id": "x"}, (A, 1)), fields={"body": ("z", (A, 2))})
    assert patched.apply(below) == {"id": "x", "heading": "base", "body": "z"}
    assert RowEdit(insert=Insertion({"id": "x"}, (A, 1))).apply(None) == {"id": "x"}


def test_deleted_coalesces_an_unsent_insert() -> None:
    """An insert that never left this layer, deleted, leaves nothing; otherwise a delete is kept."""
    fresh = RowEdit(insert=Insertion({"id": "x"}, (A, 1)))
    assert fresh.deleted((A, 2), exists_below=False) is None
    assert fresh.deleted((A, 2), exists_below=True) == RowEdit(delete=(A, 2))
    sent = RowEdit(insert=Insertion({"id": "x"}, (A, 1)), maybe_exists=True)
    assert sent.deleted((A, 2), exists_below=False) == RowEdit(delete=(A, 2), maybe_exists=True)
    undo = RowEdit(delete=(A, 1), insert=Insertion({"id": "x"}, (A, 2)))
    assert undo.deleted((A, 3), exists_below=False) == RowEdit(delete=(A, 3))


def test_authors() -> None:
    """An edit knows which mutations it still holds."""
    edit = RowEdit(delete=(A, 1), insert=Insertion({"id": "x"}, (A, 2)), fields={"b": (1, (A, 3))})
    assert edit.authors() == {(A, 1), (A, 2), (A, 3)}
    assert RowEdit().authors() == set()


def test_compose_newer_wins_per_field() -> None:
    """Merged back, newer fields win and older ones stay."""
    older = RowEdit(fields={"heading": ("old", (A, 1)), "body": ("kept", (A, 1))})
    newer = RowEdit(fields={"heading": ("new", (A, 2))})
    merged = compose(older, newer)
    assert merged.fields == {"heading": ("new", (A, 2)), "body": ("kept", (A, 1))}
    assert not merged.maybe_exists


def test_compose_marks_sent_inserts() -> None:
    """Whatever the failed batch inserted may exist, whoever comes after."""
    older = RowEdit(insert=Insertion({"id": "x"}, (A, 1)))
    assert compose(older, None).maybe_exists
    assert compose(older, RowEdit(fields={"b": (1, (A, 2))})).insert == older.insert
    assert compose(RowEdit(), RowEdit(maybe_exists=True)).maybe_exists


def test_compose_with_newer_delete_or_insert() -> None:
    """A newer delete wins over everything older; a newer insert keeps the older delete before it."""
    older = RowEdit(fields={"b": (1, (A, 1))})
    assert compose(older, RowEdit(delete=(A, 2))) == RowEdit(delete=(A, 2))
    reinsert = RowEdit(insert=Insertion({"id": "x"}, (A, 3)))
    assert compose(RowEdit(delete=(A, 2)), reinsert) == RowEdit(delete=(A, 2), insert=reinsert.insert)


def test_ops_and_their_order() -> None:
    """A layer's ops come deletes first, then inserts, then updates, tables in dependency order."""
    edits: dict[tuple[Table, RowId], RowEdit] = {
        ("clips", RowId("c1")): RowEdit(fields={"prompt": ("p", (A, 1))}),
        ("scenes", RowId("s1")): RowEdit(delete=(A, 2), insert=Insertion({"id": "s1"}, (A, 3))),
        ("clips", RowId("c2")): RowEdit(delete=(A, 4)),
        ("projects", RowId("p")): RowEdit(fields={"title": ("t", (A, 5))}),
        ("clips", RowId("c3")): RowEdit(insert=Insertion({"id": "c3"}, (A, 6))),
        ("scenes", RowId("s2")): RowEdit(fields={"heading": ("h", (A, 7))}),
    }
    assert order_ops(edits) == (
        DeleteRow("clips", RowId("c2"), (A, 4)),
        DeleteRow("scenes", RowId("s1"), (A, 2)),
        InsertRow("scenes", RowId("s1"), {"id": "s1"}, (A, 3)),
        InsertRow("clips", RowId("c3"), {"id": "c3"}, (A, 6)),
        UpdateRow("projects", RowId("p"), {"title": FieldWrite("t", (A, 5))}),
        UpdateRow("scenes", RowId("s2"), {"heading": FieldWrite("h", (A, 7))}),
        UpdateRow("clips", RowId("c1"), {"prompt": FieldWrite("p", (A, 1))}),
    )
