"""ProjectState: the live view over server rows, in-flight and pending edits; rebase, deletes, re-reads."""

from __future__ import annotations

import pytest

from syncd.core.batch import DeleteRow, FieldWrite, InsertRow, UpdateRow
from syncd.core.effects import Change, Error, ProjectNotFound, RemoveJournal, RequestReread, Saved, WriteBatch
from syncd.core.engine import SyncEngine
from syncd.core.ids import ClientId, ConnId, RowId
from syncd.core.inputs import (
    Delete,
    Insert,
    Patch,
    ProjectRows,
    RemoteDelete,
    RemoteUpsert,
    WriteFailed,
    WriteOk,
)
from syncd.core.journal import JournalEntry, Reordered
from syncd.core.project import MAX_REREADS, MAX_TOMBSTONES
from syncd.core.schema import table_named
from syncd.core.values import JsonValue
from tests.core.builders import (
    C1,
    CONN_A,
    CONN_B,
    EPOCH,
    S1,
    S2,
    S3,
    USER,
    A,
    B,
    P,
    clip,
    cut,
    default_rows,
    engine,
    loaded,
    of_type,
    only,
    project_row,
    project_rows,
    scene,
    send,
)


def remote(sync: SyncEngine, change: RemoteUpsert | RemoteDelete) -> list[object]:
    sync.receive_remote_change(P, change, 1.0)
    return list(sync.take_effects())


def view(sync: SyncEngine, conn: ConnId = CONN_A) -> dict[str, dict[str, object]]:
    """The live rows by id, as a snapshot shows them."""
    snapshot = sync.snapshot_for(conn)
    assert snapshot is not None
    rows = [snapshot.project, *snapshot.scenes, *snapshot.clips]
    return {str(row["id"]): dict(row) for row in rows}


# -- snapshots -----------------------------------------------------------------------------------------


def test_snapshot_orders_rows_by_index_then_id() -> None:
    """Scenes and clips come ordered by their index, ties by id, rows without a number last."""
    rows = project_rows(
        [scene("s-b", 1), scene("s-a", 1), scene("s-z", 0), scene("s-n", 0, scene_index=None)],
        [clip("c-2", 3), clip("c-1", 2.5)],
    )
    sync = loaded(rows)
    snapshot = sync.snapshot_for(CONN_A)
    assert snapshot is not None
    assert [row["id"] for row in snapshot.scenes] == ["s-z", "s-a", "s-b", "s-n"]
    assert [row["id"] for row in snapshot.clips] == ["c-1", "c-2"]
    assert all("version" not in row for row in snapshot.scenes)


def test_snapshot_rows_are_copies() -> None:
    """A snapshot does not change when the live view changes afterwards."""
    sync = loaded()
    snapshot = sync.snapshot_for(CONN_A)
    assert snapshot is not None
    send(sync, Patch(1, "scenes", S1, {"heading": "changed"}))
    assert snapshot.scenes[0]["heading"] == ""


# -- remote changes: echoes, staleness, rebase ---------------------------------------------------------


def test_echo_and_stale_rows_are_dropped() -> None:
    """A remote row whose version is not newer than the known one changes nothing and takes no seq."""
    sync = loaded()
    assert remote(sync, RemoteUpsert("scenes", scene(S1, 0, 1, heading="echo"))) == []
    remote(sync, RemoteUpsert("scenes", scene(S1, 0, 3, heading="v3")))
    assert remote(sync, RemoteUpsert("scenes", scene(S1, 0, 2, heading="v2"))) == []
    assert view(sync)[S1]["heading"] == "v3"


def test_newer_remote_row_sends_only_visible_changes() -> None:
    """A newer remote row becomes server state; editors get only the fields whose visible value changed."""
    sync = loaded()
    effects = remote(sync, RemoteUpsert("scenes", scene(S1, 0, 2, heading="remote", body="b")))
    assert effects == [
        Change(P, 1, "scenes", "update", S1, None, {"heading": "remote", "body": "b"}, "db", None, None)
    ]
    # Only the version moved: nothing visible, no change, no seq.
    assert remote(sync, RemoteUpsert("scenes", scene(S1, 0, 3, heading="remote", body="b"))) == []


def test_pending_fields_are_rebased_on_a_newer_row() -> None:
    """Pending fields stay on top of a newer remote row; only other fields reach the editors."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "mine"}))
    effects = remote(sync, RemoteUpsert("scenes", scene(S1, 0, 2, heading="theirs", body="theirs")))
    assert only(effects, Change).set == {"body": "theirs"}
    assert view(sync)[S1]["heading"] == "mine"
    assert cut(sync).ops == (UpdateRow("scenes", S1, {"heading": FieldWrite("mine", (A, 1))}),)


def test_remote_insert_appears() -> None:
    """A row inserted by someone else reaches the editors as an insert."""
    sync = loaded()
    change = only(remote(sync, RemoteUpsert("clips", clip("c-new", 4, prompt="r"))), Change)
    assert (change.op, change.row, change.origin) == (
        "insert",
        {"id": "c-new", "project_id": P, "order_index": 4, "prompt": "r"},
        "db",
    )


def test_a_vanished_field_reads_as_null() -> None:
    """A field missing from a newer row is sent as null."""
    sync = loaded()
    row = scene(S1, 0, 2)
    del row["heading"]
    assert only(remote(sync, RemoteUpsert("scenes", row)), Change).set == {"heading": None}


def test_rows_of_other_projects_are_ignored_or_leave() -> None:
    """A row of another project is ignored, and a known row that moved away is removed."""
    sync = loaded()
    assert remote(sync, RemoteUpsert("scenes", {**scene("s-x", 0), "project_id": "p-other"})) == []
    assert remote(sync, RemoteUpsert("projects", {"id": "p-other", "version": 4})) == []
    moved = remote(sync, RemoteUpsert("scenes", {**scene(S2, 1, 2), "project_id": "p-other"}))
    assert only(moved, Change).op == "delete"
    assert S2 not in view(sync)


def test_remote_changes_while_loading_apply_after_the_load() -> None:
    """Changes that arrive during the load are applied after it; versions decide."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.receive_remote_change(P, RemoteUpsert("scenes", scene(S1, 0, 5, heading="early")), 0.0)
    sync.receive_remote_change(P, RemoteUpsert("scenes", scene(S2, 1, 1, heading="stale")), 0.0)
    sync.receive_loaded(P, project_rows([scene(S1, 0, 2), scene(S2, 1, 3, heading="loaded")]), 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    rows = view(sync)
    assert (rows[S1]["heading"], rows[S2]["heading"]) == ("early", "loaded")


def test_project_deleted_while_loading() -> None:
    """A delete of the project that arrives during the load means the project is gone."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.receive_remote_change(P, RemoteDelete("projects", RowId(P), 2), 0.0)
    sync.take_effects()
    sync.receive_loaded(P, default_rows(), 0.0)
    assert only(sync.take_effects(), ProjectNotFound).project_id == P


# -- remote deletes ------------------------------------------------------------------------------------


def test_remote_delete_wins_over_pending_edits() -> None:
    """A remote delete drops the row's pending edits and tells each author once, with its latest mid."""
    sync = loaded(conns=((CONN_A, A), (CONN_B, B)))
    send(sync, Patch(1, "scenes", S2, {"heading": "a1"}))
    send(sync, Patch(2, "scenes", S2, {"body": "a2"}))
    send(sync, Patch(7, "scenes", S2, {"heading": "b7"}), conn=CONN_B)
    send(sync, Patch(3, "scenes", S1, {"heading": "kept"}))
    effects = remote(sync, RemoteDelete("scenes", S2, 1))
    errors = of_type(effects, Error)
    assert [(e.conn, e.mid, e.code) for e in errors] == [(CONN_A, 2, "conflict"), (CONN_B, 7, "conflict")]
    assert "'s-2'" in errors[0].message
    assert only(effects, Change) == Change(P, 5, "scenes", "delete", S2, None, None, "db", None, None)
    batch = cut(sync)
    assert batch.ops == (UpdateRow("scenes", S1, {"heading": FieldWrite("kept", (A, 3))}),)
    # The dropped mutations are still recorded, so their journal entries go with this batch.
    assert batch.mutation_ids == ((A, 1), (A, 2), (B, 7), (A, 3))


def test_remote_delete_without_pending_edits() -> None:
    """A remote delete of an unedited row only removes it."""
    sync = loaded()
    effects = remote(sync, RemoteDelete("scenes", S3))
    assert [type(e) for e in effects] == [Change]


def test_conflict_reaches_only_connected_authors() -> None:
    """An author without a connection is not told (nothing to tell it on)."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S2, {"heading": "a1"}))
    sync.detach(CONN_A, 0.0)
    sync.take_effects()
    assert not of_type(remote(sync, RemoteDelete("scenes", S2)), Error)


def test_stale_upsert_after_delete_does_not_resurrect() -> None:
    """A late update of a deleted row is stale next to its tombstone."""
    sync = loaded()
    remote(sync, RemoteDelete("scenes", S2, 3))
    assert remote(sync, RemoteUpsert("scenes", scene(S2, 1, 3, heading="late"))) == []
    assert S2 not in view(sync)
    # A newer incarnation does come back.
    assert only(remote(sync, RemoteUpsert("scenes", scene(S2, 1, 4))), Change).op == "insert"


def test_delete_of_an_unknown_row_leaves_a_tombstone() -> None:
    """A delete that arrives before the row's insert keeps the late insert out."""
    sync = loaded()
    assert remote(sync, RemoteDelete("clips", RowId("c-9"), 2)) == []
    assert remote(sync, RemoteDelete("clips", RowId("c-9"), 1)) == []
    assert remote(sync, RemoteDelete("clips", RowId("c-8"))) == []
    assert remote(sync, RemoteUpsert("clips", clip("c-9", 1, 2))) == []
    assert only(remote(sync, RemoteUpsert("clips", clip("c-8", 1, 1))), Change).op == "insert"


def test_delete_of_an_older_incarnation_is_ignored() -> None:
    """A delete whose version is below the known row's, or not above an earlier tombstone, is a late echo."""
    sync = loaded()
    remote(sync, RemoteUpsert("scenes", scene(S1, 0, 5)))
    assert remote(sync, RemoteDelete("scenes", S1, 4)) == []
    remote(sync, RemoteDelete("scenes", S2, 7))
    remote(sync, RemoteUpsert("scenes", scene(S2, 1, 8)))
    assert remote(sync, RemoteDelete("scenes", S2, 7)) == []
    assert only(remote(sync, RemoteDelete("scenes", S2, 8)), Change).op == "delete"


def test_remote_delete_of_the_project() -> None:
    """Deleting the project forgets it, closes its editors and drops its unsaved edits."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "x"}))
    effects = remote(sync, RemoteDelete("projects", RowId(P), 1))
    assert effects == [
        Error(P, CONN_A, None, "not_found", "the project does not exist"),
        ProjectNotFound(P, (CONN_A,), ((A, 1),)),
        RemoveJournal(P, ((A, 1),)),
    ]
    assert sync.status(P) is None
    assert sync.next_deadline() is None


def test_tombstones_are_bounded() -> None:
    """Only the most recent tombstones are kept."""
    sync = loaded()
    for n in range(MAX_TOMBSTONES + 1):
        sync.receive_remote_change(P, RemoteDelete("clips", RowId(f"gone-{n}"), 5), 0.0)
    # The oldest tombstone was forgotten, so a late row of it comes back; a recent one does not.
    assert remote(sync, RemoteUpsert("clips", clip("gone-0", 0, 5)))
    assert remote(sync, RemoteUpsert("clips", clip("gone-1", 0, 5))) == []


# -- write results -------------------------------------------------------------------------------------


def test_write_result_updates_server_rows() -> None:
    """Returned rows become server state; database defaults reach the editors as a db change."""
    sync = loaded()
    send(sync, Insert(1, "scenes", {"id": "s-9", "heading": "x"}))
    batch = cut(sync)
    returned: dict[str, JsonValue] = {
        "id": "s-9",
        "project_id": P,
        "heading": "x",
        "body": "",
        "scene_index": 0,
        "version": 1,
    }
    sync.receive_write_result(P, WriteOk(batch.batch_id, (("scenes", returned),)), 11.0)
    effects = sync.take_effects()
    assert only(effects, Change) == Change(
        P, 2, "scenes", "update", RowId("s-9"), None, {"body": "", "scene_index": 0}, "db", None, None
    )
    assert only(effects, Saved) == Saved(P, 2)


def test_returned_row_older_than_known_is_ignored() -> None:
    """A returned row older than one the change feed already delivered does not roll the view back."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "mine"}))
    batch = cut(sync)
    remote(sync, RemoteUpsert("scenes", scene(S1, 0, 3, heading="mine", body="later")))
    sync.receive_write_result(
        P, WriteOk(batch.batch_id, (("scenes", scene(S1, 0, 2, heading="mine")),)), 11.0
    )
    assert not of_type(sync.take_effects(), Change)
    assert view(sync)[S1]["body"] == "later"


def test_row_deleted_during_the_flight_stays_deleted() -> None:
    """A row deleted while its batch was in flight is not brought back by the batch's result."""
    sync = loaded()
    send(sync, Insert(1, "clips", {"id": "c-9"}))
    batch = cut(sync)
    remote(sync, RemoteUpsert("clips", clip("c-9", 0, 1)))
    # The echo shows the batch's insert is in the database; the delete after it wins at once.
    assert only(remote(sync, RemoteDelete("clips", RowId("c-9"), 1)), Change).op == "delete"
    assert "c-9" not in view(sync)
    sync.receive_write_result(P, WriteOk(batch.batch_id, (("clips", clip("c-9", 0, 1)),)), 11.0)
    assert not of_type(sync.take_effects(), Change)
    assert "c-9" not in view(sync)


def test_missing_row_after_our_delete_is_expected() -> None:
    """A row our batch deleted is reported missing without any conflict."""
    sync = loaded()
    send(sync, Delete(1, "scenes", S2))
    batch = cut(sync)
    assert batch.ops == (DeleteRow("scenes", S2, (A, 1)),)
    sync.receive_write_result(P, WriteOk(batch.batch_id, missing=(("scenes", S2),)), 11.0)
    effects = sync.take_effects()
    assert not of_type(effects, Error)
    assert not of_type(effects, Change)
    assert only(effects, Saved) == Saved(P, 1)
    # Its tombstone keeps a late echo of an older state out.
    assert remote(sync, RemoteUpsert("scenes", scene(S2, 1, 1))) == []


def test_row_that_vanished_under_the_batch_is_a_conflict() -> None:
    """An update of a row that no longer exists drops the row's edits and tells their authors."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S2, {"heading": "lost"}))
    batch = cut(sync)
    send(sync, Patch(2, "scenes", S2, {"body": "also lost"}), now=10.0)
    sync.receive_write_result(P, WriteOk(batch.batch_id, missing=(("scenes", S2),)), 11.0)
    effects = sync.take_effects()
    assert [(e.conn, e.mid, e.code) for e in of_type(effects, Error)] == [(CONN_A, 2, "conflict")]
    assert only(effects, Change).op == "delete"
    # The dropped edit's mid still goes to the database so its journal entry can go.
    assert cut(sync, 20.0).ops == ()


def test_row_missing_that_the_batch_did_not_touch() -> None:
    """A missing row the batch never wrote is treated like a remote delete, with no one to blame."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync)
    sync.receive_write_result(
        P, WriteOk(batch.batch_id, (("scenes", scene(S1, 0, 2, heading="a")),), (("clips", C1),)), 11.0
    )
    effects = sync.take_effects()
    assert not of_type(effects, Error)
    assert only(effects, Change).id == C1


def test_project_row_missing_after_a_write() -> None:
    """A write that finds the project row gone means the project is gone."""
    sync = loaded()
    send(sync, Patch(1, "projects", RowId(P), {"title": "x"}))
    batch = cut(sync)
    sync.receive_write_result(P, WriteOk(batch.batch_id, missing=(("projects", RowId(P)),)), 11.0)
    effects = sync.take_effects()
    assert of_type(effects, RemoveJournal)[0] == RemoveJournal(P, ((A, 1),))
    assert only(effects, ProjectNotFound).dropped == ()
    assert sync.status(P) is None


def test_write_failure_after_the_project_closed_is_ignored() -> None:
    """A result for a project that was forgotten meanwhile changes nothing."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "x"}))
    batch = cut(sync)
    remote(sync, RemoteDelete("projects", RowId(P)))
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "x"), 11.0)
    assert sync.take_effects() == []


# -- coalescing ----------------------------------------------------------------------------------------


def test_insert_then_delete_coalesce_to_nothing() -> None:
    """An insert deleted again before the flush writes no row, but both mids are recorded."""
    sync = loaded()
    send(sync, Insert(1, "clips", {"id": "c-9"}))
    send(sync, Patch(2, "clips", RowId("c-9"), {"prompt": "x"}))
    send(sync, Delete(3, "clips", RowId("c-9")))
    batch = cut(sync)
    assert batch.ops == ()
    assert batch.mutation_ids == ((A, 1), (A, 2), (A, 3))


def test_insert_then_patch_keeps_attribution() -> None:
    """Fields patched after an insert are written as an update attributed to the patch."""
    sync = loaded()
    send(sync, Insert(1, "clips", {"id": "c-9", "prompt": "a"}))
    send(sync, Patch(2, "clips", RowId("c-9"), {"prompt": "b"}))
    row = {"id": "c-9", "prompt": "a", "project_id": P}
    assert cut(sync).ops == (
        InsertRow("clips", RowId("c-9"), row, (A, 1)),
        UpdateRow("clips", RowId("c-9"), {"prompt": FieldWrite("b", (A, 2))}),
    )
    assert view(sync)["c-9"]["prompt"] == "b"


def test_delete_then_insert_again() -> None:
    """Deleting a row and inserting it again (undo) deletes, then inserts."""
    sync = loaded()
    send(sync, Delete(1, "scenes", S2))
    send(sync, Insert(2, "scenes", {"id": S2, "heading": "back"}))
    send(sync, Delete(3, "scenes", S2))
    send(sync, Insert(4, "scenes", {"id": S2, "heading": "again"}))
    row = {"id": S2, "heading": "again", "project_id": P}
    assert cut(sync).ops == (DeleteRow("scenes", S2, (A, 3)), InsertRow("scenes", S2, row, (A, 4)))


def test_delete_of_a_row_inserted_by_the_batch_in_flight() -> None:
    """A row whose insert is in flight exists below the pending edits, so deleting it sends a delete."""
    sync = loaded()
    send(sync, Insert(1, "clips", {"id": "c-9"}))
    first = cut(sync)
    send(sync, Delete(2, "clips", RowId("c-9")), now=10.0)
    sync.receive_write_result(P, WriteOk(first.batch_id, (("clips", clip("c-9", 0)),)), 10.5)
    sync.take_effects()
    assert cut(sync, 20.0).ops == (DeleteRow("clips", RowId("c-9"), (A, 2)),)


def test_insert_again_while_the_delete_is_in_flight() -> None:
    """A row whose delete is in flight can be inserted again; the insert waits for the next batch."""
    sync = loaded()
    send(sync, Delete(1, "scenes", S2))
    first = cut(sync)
    send(sync, Insert(2, "scenes", {"id": S2}), now=10.0)
    send(sync, Delete(3, "scenes", S2), now=10.0)
    sync.receive_write_result(P, WriteOk(first.batch_id, missing=(("scenes", S2),)), 10.5)
    assert not of_type(sync.take_effects(), Error)
    assert cut(sync, 20.0).ops == ()


def test_failed_insert_may_exist_so_a_delete_is_sent() -> None:
    """After a failed batch, an insert may already be in the database, so deleting it sends a delete."""
    sync = loaded()
    send(sync, Insert(1, "clips", {"id": "c-9"}))
    batch = cut(sync)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "timeout"), 10.0)
    send(sync, Delete(2, "clips", RowId("c-9")), now=10.0)
    sync.handle_timer(20.0)
    assert only(sync.take_effects(), WriteBatch).ops == (DeleteRow("clips", RowId("c-9"), (A, 2)),)


def test_batch_ops_order() -> None:
    """Deletes come first (clips, scenes), then inserts (scenes, clips), then updates."""
    sync = loaded()
    send(sync, Patch(1, "clips", C1, {"prompt": "p"}))
    send(sync, Insert(2, "clips", {"id": "c-9"}))
    send(sync, Patch(3, "projects", RowId(P), {"title": "t"}))
    send(sync, Insert(4, "scenes", {"id": "s-9"}))
    send(sync, Delete(5, "scenes", S3))
    send(sync, Patch(6, "scenes", S1, {"heading": "h"}))
    send(sync, Delete(7, "clips", C1))
    kinds = [(type(op).__name__, op.table) for op in cut(sync).ops]
    assert kinds == [
        ("DeleteRow", "clips"),
        ("DeleteRow", "scenes"),
        ("InsertRow", "scenes"),
        ("InsertRow", "clips"),
        ("UpdateRow", "projects"),
        ("UpdateRow", "scenes"),
    ]


# -- re-reads ------------------------------------------------------------------------------------------


def _reread(sync: SyncEngine) -> int:
    sync.request_reread(P)
    return only(sync.take_effects(), RequestReread).token


def test_reread_applies_newer_rows_and_deletes_absent_ones() -> None:
    """Newer rows act as remote upserts, absent rows as remote deletes, stale rows are dropped."""
    sync = loaded()
    token = _reread(sync)
    rows = project_rows(
        [scene(S1, 0, 2, heading="newer"), scene(S2, 1, 1), scene("s-new", 5)], [clip(C1, 0, 1)]
    )
    remote(sync, RemoteUpsert("clips", clip(C1, 0, 2, prompt="fresher")))
    sync.receive_reread(P, token, rows, 2.0)
    changes = of_type(sync.take_effects(), Change)
    assert [(c.op, c.id) for c in changes] == [("update", S1), ("insert", RowId("s-new")), ("delete", S3)]
    assert view(sync)[C1]["prompt"] == "fresher"


def test_reread_spares_rows_learned_after_it_was_asked() -> None:
    """Rows learned after the re-read was asked (like our own insert's result) survive their absence."""
    sync = loaded()
    send(sync, Insert(1, "clips", {"id": "c-9"}))
    batch = cut(sync)
    token = _reread(sync)
    send(sync, Insert(2, "clips", {"id": "c-10"}), now=10.0)
    sync.receive_write_result(P, WriteOk(batch.batch_id, (("clips", clip("c-9", 0)),)), 11.0)
    sync.take_effects()
    sync.receive_reread(P, token, default_rows(), 12.0)
    assert sync.take_effects() == []
    assert {"c-9", "c-10"} <= set(view(sync))


def test_reread_does_not_resurrect_rows_deleted_after_it_was_asked() -> None:
    """A row the re-read still has, but whose delete arrived after it was asked, stays deleted."""
    sync = loaded()
    token = _reread(sync)
    remote(sync, RemoteDelete("scenes", S2, 1))
    sync.receive_reread(P, token, default_rows(), 2.0)
    assert sync.take_effects() == []
    assert S2 not in view(sync)
    # A re-read asked after the delete was learned is believed: the row exists again.
    token = _reread(sync)
    sync.receive_reread(P, token, default_rows(), 3.0)
    assert only(sync.take_effects(), Change).op == "insert"


def test_reread_with_unknown_token_is_ignored() -> None:
    """An answer to a re-read that was never asked (or already answered) is ignored."""
    sync = loaded()
    token = _reread(sync)
    sync.receive_reread(P, token, project_rows(), 2.0)
    assert len(of_type(sync.take_effects(), Change)) == 4
    sync.receive_reread(P, token, default_rows(), 2.0)
    assert sync.take_effects() == []


def test_reread_without_the_project() -> None:
    """A re-read that finds no project row means the project is gone."""
    sync = loaded()
    token = _reread(sync)
    sync.receive_reread(P, token, ProjectRows(None), 2.0)
    assert only(sync.take_effects(), ProjectNotFound).conns == (CONN_A,)


def test_reread_keeps_pending_inserts() -> None:
    """A pending insert is not a server row, so a re-read without it leaves it alone."""
    sync = loaded()
    send(sync, Insert(1, "scenes", {"id": "s-9"}))
    token = _reread(sync)
    sync.receive_reread(P, token, default_rows(), 2.0)
    assert sync.take_effects() == []
    assert "s-9" in view(sync)


# -- journal replay ------------------------------------------------------------------------------------


def test_replay_of_every_kind() -> None:
    """Replayed entries become pending edits of every kind, broadcast as editor changes."""
    sync = engine()
    sync.restore(
        [
            JournalEntry(P, A, 1, Patch(1, "scenes", S1, {"heading": "h"})),
            JournalEntry(P, A, 2, Insert(2, "clips", {"id": "c-9", "project_id": P})),
            JournalEntry(P, A, 3, Delete(3, "scenes", S2)),
            JournalEntry(P, A, 4, Reordered(4, "scenes", ((S3, 0), (S1, 1)))),
            JournalEntry(P, B, 1, Patch(1, "scenes", RowId("gone"), {"heading": "h"})),
        ]
    )
    sync.open_project(P, EPOCH, 0.0)
    sync.receive_loaded(P, default_rows(), 0.0)
    effects = sync.take_effects()
    changes = of_type(effects, Change)
    assert [(c.op, c.id, c.mid) for c in changes] == [
        ("update", S1, 1),
        ("insert", RowId("c-9"), 2),
        ("delete", S2, 3),
        ("update", S3, 4),
        ("update", S1, 4),
    ]
    batch = only(effects, WriteBatch)
    assert DeleteRow("scenes", S2, (A, 3)) in batch.ops
    assert UpdateRow("scenes", RowId("gone"), {"heading": FieldWrite("h", (B, 1))}) in batch.ops


def test_replayed_insert_can_be_deleted_only_by_sending_a_delete() -> None:
    """A replayed insert may already be in the database, so a delete of it is always sent."""
    sync = engine()
    sync.restore([JournalEntry(P, A, 1, Insert(1, "clips", {"id": "c-9", "project_id": P}))])
    sync.open_project(P, EPOCH, 0.0)
    sync.receive_loaded(P, default_rows(), 0.0)
    sync.attach(CONN_B, B, USER, P, None, 0.0)
    batch = only(sync.take_effects(), WriteBatch)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "x"), 0.0)
    send(sync, Delete(1, "clips", RowId("c-9")), conn=CONN_B)
    sync.handle_timer(30.0)
    assert only(sync.take_effects(), WriteBatch).ops == (DeleteRow("clips", RowId("c-9"), (B, 1)),)


def test_table_named() -> None:
    """Journal tables are checked by name."""
    assert table_named("clips") == "clips"
    with pytest.raises(ValueError, match="not synced"):
        table_named("voices")


def test_conflict_errors_go_to_the_connection_of_the_author() -> None:
    """The conflict reaches the author's connection (one per client id: a newer one takes over)."""
    sync = loaded(conns=((CONN_A, A), (CONN_B, B), (ConnId("conn-c"), ClientId("c"))))
    send(sync, Patch(1, "scenes", S2, {"heading": "x"}))
    sync.attach(ConnId("conn-d"), A, USER, P, None, 0.0)
    sync.take_effects()
    errors = of_type(remote(sync, RemoteDelete("scenes", S2)), Error)
    assert [e.conn for e in errors] == [ConnId("conn-d")]


def test_project_patch_row_key() -> None:
    """The project row is patched like any other row."""
    sync = loaded(project_rows(project=project_row(title="Old")))
    send(sync, Patch(1, "projects", RowId(P), {"title": "New"}))
    assert view(sync)[P]["title"] == "New"


def test_unanswered_rereads_are_bounded() -> None:
    """Only the latest unanswered re-reads are awaited; an answer to a forgotten one is ignored."""
    sync = loaded()
    tokens = [_reread(sync) for _ in range(MAX_REREADS + 1)]
    sync.receive_reread(P, tokens[0], project_rows(), 2.0)
    assert sync.take_effects() == []
    sync.receive_reread(P, tokens[1], project_rows(), 2.0)
    assert len(of_type(sync.take_effects(), Change)) == 4


def test_failed_batch_without_editor_changes() -> None:
    """A failed batch of replayed edits that changed nothing visible leaves saved_seq where it was."""
    sync = loaded()
    sync.restore([JournalEntry(P, B, 1, Patch(1, "scenes", S1, {"heading": ""}))])
    batch = only(sync.take_effects(), WriteBatch)
    send(sync, Patch(1, "scenes", S3, {"heading": "during the flight"}), now=0.5)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "x"), 1.0)
    status = sync.status(P)
    assert status is not None
    assert (status.seq, status.saved_seq, status.pending) == (1, 0, 2)


def test_remote_change_to_another_row_during_a_flight() -> None:
    """A row the batch in flight does not touch rebases on its own."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    cut(sync)
    change = only(remote(sync, RemoteUpsert("scenes", scene(S2, 1, 2, heading="theirs"))), Change)
    assert (change.id, change.set) == (S2, {"heading": "theirs"})


def test_delete_of_a_row_patched_in_flight() -> None:
    """A row whose patch is in flight still exists below, so deleting it sends a delete."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S2, {"heading": "a"}))
    first = cut(sync)
    send(sync, Delete(2, "scenes", S2), now=10.0)
    sync.receive_write_result(P, WriteOk(first.batch_id, (("scenes", scene(S2, 1, 2, heading="a")),)), 10.5)
    sync.take_effects()
    assert cut(sync, 20.0).ops == (DeleteRow("scenes", S2, (A, 2)),)


def test_row_deleted_during_the_flight_then_reported_missing() -> None:
    """A row deleted remotely in flight conflicts once for its author; the missing result adds nothing."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S2, {"heading": "lost"}))
    batch = cut(sync)
    effects = remote(sync, RemoteDelete("scenes", S2, 1))
    assert [(e.conn, e.mid, e.code) for e in of_type(effects, Error)] == [(CONN_A, 1, "conflict")]
    sync.receive_write_result(P, WriteOk(batch.batch_id, missing=(("scenes", S2),)), 11.0)
    later = sync.take_effects()
    assert not of_type(later, Error)  # told once, when the delete arrived
    assert not of_type(later, Change)
