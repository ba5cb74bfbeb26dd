"""Changes to side rows (exports, audio files): the engine numbers them into the stream, keeps no rows."""

from __future__ import annotations

from syncd.core.effects import CatchUp, Change
from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import Patch, SideChange
from tests.core.builders import CONN_B, EPOCH, USER, B, P, engine, loaded, only, send

EXPORT = RowId("e-1")


def test_a_side_change_takes_the_next_seq_with_origin_db() -> None:
    """An export's insert and update are the stream's next changes, in order with editors' changes."""
    sync = loaded()
    send(sync, Patch(1, "projects", RowId(P), {"title": "t"}))
    row = {"id": EXPORT, "status": "queued"}
    assert sync.receive_side_change(P, SideChange("exports", "insert", EXPORT, row=row), 1.0)
    insert = only(sync.take_effects(), Change)
    assert (insert.seq, insert.table, insert.op, insert.row, insert.origin) == (
        2,
        "exports",
        "insert",
        row,
        "db",
    )
    assert (insert.client_id, insert.mid) == (None, None)
    assert sync.receive_side_change(P, SideChange("exports", "update", EXPORT, set={"status": "done"}), 2.0)
    update = only(sync.take_effects(), Change)
    assert (update.seq, update.set) == (3, {"status": "done"})
    sync.attach(CONN_B, B, USER, P, (EPOCH, 1), 3.0)
    caught_up = only(sync.take_effects(), CatchUp)
    assert [(c.seq, c.table) for c in caught_up.changes] == [(2, "exports"), (3, "exports")]
    snapshot = sync.snapshot_for(CONN_B)
    assert snapshot is not None
    assert snapshot.seq == 3
    assert sync.pending_count() == 1


def test_a_side_change_of_a_project_not_open_or_not_loaded_is_not_taken() -> None:
    """Nothing to number: the project's load reads the side rows anew."""
    sync = engine()
    change = SideChange("audio_files", "delete", RowId("a-1"))
    assert not sync.receive_side_change(ProjectId("nope"), change, 0.0)
    sync.open_project(P, EPOCH, 0.0)
    sync.take_effects()
    assert not sync.receive_side_change(P, change, 0.0)
    assert sync.take_effects() == []
