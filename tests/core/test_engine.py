"""SyncEngine: projects, connections, mutations, dedupe, debounce, retries and shutdown."""

from __future__ import annotations

import pytest

from syncd.core.batch import FieldWrite, InsertRow, UpdateRow
from syncd.core.effects import (
    Ack,
    Append,
    CatchUp,
    Change,
    Error,
    LoadProject,
    Presence,
    PresenceEditor,
    ProjectNotFound,
    RemoveJournal,
    RequestReread,
    Saved,
    Snapshot,
    Welcome,
    WriteBatch,
)
from syncd.core.engine import ProjectProgress, SyncEngine, unsaved_count
from syncd.core.ids import ClientId, ConnId, ProjectId, RowId
from syncd.core.inputs import (
    Delete,
    Flush,
    Insert,
    Patch,
    ProjectRows,
    RemoteUpsert,
    Reorder,
    WriteFailed,
    WriteOk,
)
from syncd.core.journal import JournalEntry, Reordered
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
    cut,
    default_rows,
    engine,
    loaded,
    of_type,
    only,
    project_row,
    scene,
    send,
)

Q = ProjectId("p-2")


# -- projects and connections --------------------------------------------------------------------------


def test_open_project_loads_once() -> None:
    """Opening a project asks for its load once; opening it again does nothing."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.open_project(P, "other", 0.0)
    assert sync.take_effects() == [LoadProject(P)]
    assert sync.open_projects() == (P,)


def test_attach_waits_for_the_load() -> None:
    """A connection attached while its project loads gets welcome, snapshot and presence after the load."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    assert sync.take_effects() == [LoadProject(P)]
    assert sync.snapshot_for(CONN_A) is None
    sync.receive_loaded(P, default_rows(), 0.0)
    effects = sync.take_effects()
    assert [type(e) for e in effects] == [Welcome, Snapshot, Presence]
    assert effects[0] == Welcome(CONN_A, P, EPOCH, 0)
    snapshot = effects[1]
    assert isinstance(snapshot, Snapshot)
    assert snapshot.conn == CONN_A
    assert [row["id"] for row in snapshot.scenes] == [S1, S2, S3]
    assert snapshot.project == {"id": P, "title": "Demo", "script": ""}
    assert snapshot.saved_seq == 0
    assert effects[2] == Presence(P, (PresenceEditor(A, USER),))


def test_attach_to_a_loaded_project_is_immediate() -> None:
    """A second editor is welcomed at once and everyone gets the new presence."""
    sync = loaded()
    sync.attach(CONN_B, B, USER, P, None, 0.0)
    effects = sync.take_effects()
    assert [type(e) for e in effects] == [Welcome, Snapshot, Presence]
    assert effects[2] == Presence(P, (PresenceEditor(A, USER), PresenceEditor(B, USER)))


def test_attach_contract() -> None:
    """Attaching to a project that is not open, or attaching a connection twice, is a caller bug."""
    sync = loaded()
    with pytest.raises(ValueError, match="not open"):
        sync.attach(CONN_B, B, USER, Q, None, 0.0)
    with pytest.raises(ValueError, match="attached already"):
        sync.attach(CONN_A, A, USER, P, None, 0.0)


def test_detach_updates_presence() -> None:
    """Detaching an editor tells the others; detaching an unknown connection does nothing."""
    sync = loaded(conns=((CONN_A, A), (CONN_B, B)))
    sync.detach(CONN_A, 1.0)
    assert sync.take_effects() == [Presence(P, (PresenceEditor(B, USER),))]
    sync.detach(CONN_A, 1.0)
    assert sync.take_effects() == []


def test_detach_while_waiting_is_silent() -> None:
    """A connection that leaves before the load was never announced, so no presence is sent."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    sync.detach(CONN_A, 0.0)
    sync.receive_loaded(P, default_rows(), 0.0)
    assert sync.take_effects() == []
    status = sync.status(P)
    assert status is not None
    assert status.waiting == 0


def test_project_not_found_at_load() -> None:
    """A project without a row: waiting editors get not_found, journaled edits are dropped and removed."""
    sync = engine()
    entry = JournalEntry(P, A, 4, Patch(4, "scenes", S1, {"heading": "x"}))
    sync.restore([entry])
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    assert sync.pending_count() == 1
    sync.receive_loaded(P, ProjectRows(None), 0.0)
    assert sync.take_effects() == [
        Error(P, CONN_A, None, "not_found", "the project does not exist"),
        ProjectNotFound(P, (CONN_A,), ((A, 4),)),
        RemoveJournal(P, ((A, 4),)),
    ]
    assert sync.status(P) is None
    assert sync.pending_count() == 0
    sync.detach(CONN_A, 0.0)  # the gateway's cleanup after closing with 4404
    assert sync.take_effects() == []


def test_project_not_found_without_edits() -> None:
    """A missing project with nothing journaled needs no journal removal."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.take_effects()
    sync.receive_loaded(P, ProjectRows(None), 0.0)
    assert sync.take_effects() == [ProjectNotFound(P, (), ())]


def test_loads_for_unknown_or_loaded_projects_are_ignored() -> None:
    """A second load, or a load of a project that is not open, changes nothing."""
    sync = loaded()
    sync.receive_loaded(P, ProjectRows(project_row(), (scene("other", 0),)), 1.0)
    sync.receive_loaded(Q, ProjectRows({"id": Q, "version": 1}), 1.0)
    assert sync.take_effects() == []
    snapshot = sync.snapshot_for(CONN_A)
    assert snapshot is not None
    assert [row["id"] for row in snapshot.scenes] == [S1, S2, S3]


def test_close_project() -> None:
    """A project closes only without editors and without unsaved edits."""
    sync = loaded()
    assert not sync.close_project(P)
    send(sync, Patch(1, "scenes", S1, {"heading": "x"}))
    sync.detach(CONN_A, 0.0)
    assert not sync.close_project(P)
    batch = cut(sync)
    assert not sync.close_project(P)
    sync.receive_write_result(P, WriteOk(batch.batch_id, (("scenes", scene(S1, 0, 2, heading="x")),)), 11.0)
    assert sync.close_project(P)
    assert sync.status(P) is None
    assert sync.close_project(P)


def test_close_project_waits_for_waiting_connections_and_restored_edits() -> None:
    """A loading project with a waiting editor, or with journal entries to replay, stays open."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    assert not sync.close_project(P)
    sync.open_project(Q, EPOCH, 0.0)
    sync.restore([JournalEntry(Q, A, 1, Patch(1, "scenes", S1, {"heading": "x"}))])
    assert not sync.close_project(Q)


def test_abandoned_project_is_forgotten_with_its_editors_and_unsaved_edits() -> None:
    """Abandoning drops a project at once, emits nothing, and lets its connections go."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "x"}))
    sync.take_effects()
    assert sync.close_project(P, abandon=True)
    assert sync.status(P) is None
    assert sync.take_effects() == []
    assert sync.next_deadline() is None
    assert sync.pending_count() == 0
    sync.detach(CONN_A, 1.0)  # the gateway's goodbye afterwards is a no-op
    with pytest.raises(ValueError, match="not attached"):
        sync.snapshot_for(CONN_A)


def test_abandoning_a_project_never_opened_drops_its_restored_entries() -> None:
    """Journal entries restored for a project that was not opened yet go with it."""
    sync = engine()
    sync.restore([JournalEntry(Q, A, 1, Patch(1, "scenes", S1, {"heading": "x"}))])
    assert sync.pending_count() == 1
    assert sync.close_project(Q, abandon=True)
    assert sync.pending_count() == 0


def test_snapshot_for_a_connection() -> None:
    """A connection whose backlog was dropped gets a fresh snapshot; unknown connections are a caller bug."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S2, {"heading": "new"}))
    snapshot = sync.snapshot_for(CONN_A)
    assert snapshot is not None
    assert (snapshot.conn, snapshot.seq) == (CONN_A, 1)
    assert snapshot.scenes[1]["heading"] == "new"
    assert sync.take_effects() == []
    with pytest.raises(ValueError, match="not attached"):
        sync.snapshot_for(ConnId("nobody"))


def test_no_snapshot_for_a_connection_while_loading() -> None:
    """A connection still waiting for its project's load gets its snapshot with the welcome instead."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    assert sync.snapshot_for(CONN_A) is None


# -- resume --------------------------------------------------------------------------------------------


def _three_changes() -> SyncEngine:
    sync = loaded()
    for mid, row in enumerate((S1, S2, S3), start=1):
        send(sync, Patch(mid, "scenes", row, {"heading": f"h{mid}"}))
    return sync


def test_resume_gets_exactly_the_missed_changes() -> None:
    """Resuming with the current epoch and a seq in history replays the changes after it."""
    sync = _three_changes()
    sync.attach(CONN_B, B, USER, P, (EPOCH, 1), 0.0)
    effects = sync.take_effects()
    assert [type(e) for e in effects] == [Welcome, CatchUp, Presence]
    replay = effects[1]
    assert isinstance(replay, CatchUp)
    assert [change.seq for change in replay.changes] == [2, 3]


def test_resume_at_the_current_seq_replays_nothing() -> None:
    """An editor that missed nothing gets an empty replay, not a snapshot."""
    sync = _three_changes()
    sync.attach(CONN_B, B, USER, P, (EPOCH, 3), 0.0)
    assert only(sync.take_effects(), CatchUp).changes == ()


@pytest.mark.parametrize("resume", [("old-epoch", 2), (EPOCH, 4), (EPOCH, -1)])
def test_resume_falls_back_to_a_snapshot(resume: tuple[str, int]) -> None:
    """An unknown epoch, or a seq in the future or below zero, gets a snapshot."""
    sync = _three_changes()
    sync.attach(CONN_B, B, USER, P, resume, 0.0)
    assert only(sync.take_effects(), Snapshot).seq == 3


def test_resume_older_than_history_gets_a_snapshot() -> None:
    """Changes that fell out of the history cannot be replayed, so a snapshot is sent."""
    sync = loaded(history_size=2)
    for mid in range(1, 5):
        send(sync, Patch(mid, "scenes", S1, {"heading": f"h{mid}"}))
    sync.attach(CONN_B, B, USER, P, (EPOCH, 1), 0.0)
    assert only(sync.take_effects(), Snapshot).seq == 4
    sync.attach(ConnId("conn-c"), ClientId("c"), USER, P, (EPOCH, 2), 0.0)
    assert [c.seq for c in only(sync.take_effects(), CatchUp).changes] == [3, 4]


def test_resume_past_the_history_byte_budget_gets_a_snapshot() -> None:
    """Large edits keep the history within its bytes: a resume from before what is kept gets a snapshot."""
    sync = loaded(history_bytes=20_000)
    for mid in range(1, 11):
        send(sync, Patch(mid, "scenes", S1, {"body": "😀" * 2000}))  # about 8 kB each
    sync.attach(CONN_B, B, USER, P, (EPOCH, 5), 0.0)
    assert only(sync.take_effects(), Snapshot).seq == 10
    sync.attach(ConnId("conn-c"), ClientId("c"), USER, P, (EPOCH, 8), 0.0)
    assert [c.seq for c in only(sync.take_effects(), CatchUp).changes] == [9, 10]


# -- presence ------------------------------------------------------------------------------------------

CONN_C, CONN_D = ConnId("conn-c"), ConnId("conn-d")
C, D = ClientId("client-c"), ClientId("client-d")


def test_presence_to_everyone_is_sent_at_most_once_per_interval() -> None:
    """Joins and leaves within the interval make one presence at its end; a newcomer gets its own at once."""
    sync = loaded(presence_interval=0.5)  # A joined at 0.0: that presence went out then
    assert sync.next_deadline() is None
    sync.attach(CONN_B, B, USER, P, None, 0.1)
    effects = sync.take_effects()
    assert [type(e) for e in effects] == [Welcome, Snapshot, Presence]
    assert effects[2] == Presence(P, (PresenceEditor(A, USER), PresenceEditor(B, USER)), None, CONN_B)
    assert sync.next_deadline() == 0.5
    sync.attach(CONN_C, C, USER, P, None, 0.2)
    assert only(sync.take_effects(), Presence).conn == CONN_C
    sync.detach(CONN_A, 0.3)
    assert sync.take_effects() == []
    sync.handle_timer(0.49)
    assert sync.take_effects() == []
    sync.handle_timer(0.5)
    assert sync.take_effects() == [Presence(P, (PresenceEditor(B, USER), PresenceEditor(C, USER)))]
    assert sync.next_deadline() is None
    sync.detach(CONN_B, 0.7)  # within the interval of the last one: waits until 1.0
    assert sync.take_effects() == []
    assert sync.next_deadline() == 1.0
    sync.handle_timer(1.0)
    assert sync.take_effects() == [Presence(P, (PresenceEditor(C, USER),))]
    sync.detach(CONN_C, 2.0)  # long after: at once
    assert sync.take_effects() == [Presence(P, ())]
    assert sync.next_deadline() is None


def test_presence_lists_the_first_editors_and_counts_all() -> None:
    """Past the limit a presence lists the first editors to arrive and says how many there are."""
    sync = loaded(conns=((CONN_A, A), (CONN_B, B), (CONN_C, C)), presence_limit=2)
    sync.attach(CONN_D, D, USER, P, None, 1.0)
    presence = only(sync.take_effects(), Presence)
    assert presence == Presence(P, (PresenceEditor(A, USER), PresenceEditor(B, USER)), 4)
    sync.detach(CONN_A, 2.0)
    sync.detach(CONN_B, 2.0)
    assert of_type(sync.take_effects(), Presence)[-1] == Presence(
        P, (PresenceEditor(C, USER), PresenceEditor(D, USER))
    )


def test_a_closed_project_forgets_its_delayed_presence() -> None:
    """A presence still waiting when the project closes is dropped with it, and its timer too."""
    sync = loaded(presence_interval=0.5)
    sync.detach(CONN_A, 0.1)
    assert sync.next_deadline() == 0.5
    assert sync.close_project(P)
    assert sync.next_deadline() is None
    sync.handle_timer(1.0)
    assert sync.take_effects() == []


# -- mutations -----------------------------------------------------------------------------------------


def test_patch_effects_in_order() -> None:
    """A patch is journaled, broadcast with the next seq, then acknowledged with that seq."""
    sync = loaded()
    patch = Patch(7, "scenes", S1, {"heading": "Opening"})
    effects = send(sync, patch)
    assert effects == [
        Append(JournalEntry(P, A, 7, patch)),
        Change(P, 1, "scenes", "update", S1, None, {"heading": "Opening"}, "editor", A, 7),
        Ack(CONN_A, 7, 1),
    ]
    effects = send(sync, Patch(8, "projects", RowId(P), {"title": "T"}))
    assert only(effects, Change).seq == 2
    assert only(effects, Ack) == Ack(CONN_A, 8, 2)


def test_insert_fills_in_the_project() -> None:
    """An insert is journaled and broadcast with the connection's project_id."""
    sync = loaded()
    effects = send(sync, Insert(1, "scenes", {"id": "s-9", "heading": "New"}))
    row = {"id": "s-9", "heading": "New", "project_id": P}
    assert effects == [
        Append(JournalEntry(P, A, 1, Insert(1, "scenes", row))),
        Change(P, 1, "scenes", "insert", RowId("s-9"), row, None, "editor", A, 1),
        Ack(CONN_A, 1, 1),
    ]


def test_insert_with_own_project_id_is_journaled_as_sent() -> None:
    """An insert that names its own project is kept as it is."""
    sync = loaded()
    insert = Insert(1, "clips", {"id": "c-9", "project_id": P, "prompt": "p"})
    effects = send(sync, insert)
    assert only(effects, Append).entry.mutation is insert


def test_delete_is_broadcast() -> None:
    """A delete removes the row from the live view."""
    sync = loaded()
    effects = send(sync, Delete(1, "scenes", S2))
    assert only(effects, Change) == Change(P, 1, "scenes", "delete", S2, None, None, "editor", A, 1)
    snapshot = sync.snapshot_for(CONN_A)
    assert snapshot is not None
    assert [row["id"] for row in snapshot.scenes] == [S1, S3]


def test_reorder_puts_listed_rows_first() -> None:
    """Listed rows take positions 0.., the rest follow in their order, and only moved rows change."""
    sync = loaded()
    effects = send(sync, Reorder(1, "scenes", (S3,)))
    assert only(effects, Append).entry.mutation == Reordered(1, "scenes", ((S3, 0), (S1, 1), (S2, 2)))
    changes = of_type(effects, Change)
    assert [(c.id, c.set) for c in changes] == [
        (S3, {"scene_index": 0}),
        (S1, {"scene_index": 1}),
        (S2, {"scene_index": 2}),
    ]
    assert only(effects, Ack) == Ack(CONN_A, 1, 3)
    effects = send(sync, Reorder(2, "scenes", (S3, S2)))
    assert [(c.id, c.set) for c in of_type(effects, Change)] == [
        (S2, {"scene_index": 1}),
        (S1, {"scene_index": 2}),
    ]


def test_reorder_that_changes_nothing() -> None:
    """A reorder into the current order is acknowledged with the current seq, nothing journaled."""
    sync = loaded()
    assert send(sync, Reorder(1, "scenes", (S1, S2))) == [Ack(CONN_A, 1, 0)]
    assert sync.next_deadline() is None


@pytest.mark.parametrize(
    ("mutation", "code", "words"),
    [
        (Patch(1, "voices", S1, {"name": "x"}), "bad_request", "'voices' is not synced"),
        (Patch(1, "scenes", S1, {}), "bad_request", "sets no field"),
        (Patch(1, "scenes", S1, {"version": 9}), "bad_request", "field 'version'"),
        (Patch(1, "scenes", S1, {"colour": "red"}), "bad_request", "field 'colour'"),
        (Patch(1, "scenes", RowId("nope"), {"heading": "x"}), "not_found", "'nope'"),
        (Patch(1, "projects", RowId("p-other"), {"title": "x"}), "forbidden", "project"),
        (Insert(1, "projects", {"id": "p-9"}), "bad_request", "insert is not allowed on table 'projects'"),
        (Insert(1, "scenes", {"heading": "x"}), "bad_request", "needs a string id"),
        (Insert(1, "scenes", {"id": ""}), "bad_request", "needs a string id"),
        (Insert(1, "scenes", {"id": "s-9", "project_id": "p-other"}), "forbidden", "project"),
        (Insert(1, "scenes", {"id": "s-9", "version": 3}), "bad_request", "field 'version'"),
        (Insert(1, "scenes", {"id": S1}), "conflict", "already exists"),
        (Delete(1, "projects", RowId(P)), "bad_request", "delete is not allowed"),
        (Delete(1, "scenes", RowId("nope")), "not_found", "'nope'"),
        (Reorder(1, "projects", ()), "bad_request", "reorder is not allowed"),
        (Reorder(1, "scenes", (S1, S1)), "bad_request", "twice"),
        (Reorder(1, "scenes", (S1, C1)), "not_found", "'c-1'"),
    ],
)
def test_bad_mutations_get_an_error(
    mutation: Patch | Insert | Delete | Reorder, code: str, words: str
) -> None:
    """A bad mutation gets an error with a code and a message naming the problem, and changes nothing."""
    sync = loaded()
    effects = send(sync, mutation)
    assert len(effects) == 1
    error = effects[0]
    assert isinstance(error, Error)
    assert (error.conn, error.mid, error.code) == (CONN_A, 1, code)
    assert words in error.message
    status = sync.status(P)
    assert status is not None
    assert (status.seq, status.pending) == (0, 0)
    # A refused mid is not taken: the editor may use it again.
    assert of_type(send(sync, Patch(1, "scenes", S1, {"heading": "ok"})), Change)


def test_mutation_before_welcome_is_refused() -> None:
    """An editor that sends before its project loaded gets unavailable."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    effects = send(sync, Patch(1, "scenes", S1, {"heading": "x"}))
    assert effects == [Error(P, CONN_A, 1, "unavailable", "the project is still loading")]


def test_mutation_from_an_unknown_connection_is_a_caller_bug() -> None:
    """The gateway must attach a connection before it sends mutations."""
    sync = loaded()
    with pytest.raises(ValueError, match="not attached"):
        sync.receive_mutation(ConnId("ghost"), Flush(1), 0.0)


# -- dedupe --------------------------------------------------------------------------------------------


def test_duplicate_mid_is_acked_with_its_seq() -> None:
    """A resent mutation is acknowledged with its original seq and applied zero times."""
    sync = loaded()
    send(sync, Patch(5, "scenes", S1, {"heading": "a"}))
    send(sync, Patch(6, "scenes", S2, {"heading": "b"}))
    assert send(sync, Patch(5, "scenes", S1, {"heading": "a"})) == [Ack(CONN_A, 5, 1)]
    assert send(sync, Patch(3, "scenes", S1, {"heading": "old"})) == [Ack(CONN_A, 3, 2)]
    status = sync.status(P)
    assert status is not None
    assert (status.seq, status.pending) == (2, 2)


def test_dedupe_is_per_client() -> None:
    """The same mid from another client is a new mutation."""
    sync = loaded(conns=((CONN_A, A), (CONN_B, B)))
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    effects = send(sync, Patch(1, "scenes", S1, {"heading": "b"}), conn=CONN_B)
    assert only(effects, Ack) == Ack(CONN_B, 1, 2)


def test_flush_mid_counts_for_dedupe() -> None:
    """A flush takes its mid: sending it again is only acknowledged."""
    sync = loaded()
    assert send(sync, Flush(1)) == [Ack(CONN_A, 1, 0)]
    assert send(sync, Flush(1)) == [Ack(CONN_A, 1, 0)]


# -- debounce and flushes ------------------------------------------------------------------------------


def test_debounce_quiet_period() -> None:
    """A project is saved `quiet` seconds after its last edit."""
    sync = loaded(quiet=0.5, max_wait=2.0)
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}), now=0.0)
    send(sync, Patch(2, "scenes", S1, {"heading": "ab"}), now=0.25)
    assert sync.next_deadline() == 0.75
    sync.handle_timer(0.5)
    assert sync.take_effects() == []
    sync.handle_timer(0.75)
    batch = only(sync.take_effects(), WriteBatch)
    assert batch.ops == (UpdateRow("scenes", S1, {"heading": FieldWrite("ab", (A, 2))}),)
    assert batch.mutation_ids == ((A, 1), (A, 2))
    assert sync.next_deadline() is None


def test_debounce_max_wait() -> None:
    """Continuous editing is still saved `max_wait` seconds after the first unsaved edit."""
    sync = loaded(quiet=0.5, max_wait=2.0)
    for n in range(8):
        send(sync, Patch(n + 1, "scenes", S1, {"heading": str(n)}), now=n * 0.25)
    assert sync.next_deadline() == 2.0
    sync.handle_timer(2.0)
    assert of_type(sync.take_effects(), WriteBatch)


def test_flush_sends_at_once() -> None:
    """A flush acknowledges and sends the pending edits now."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    effects = send(sync, Flush(2))
    assert [type(e) for e in effects] == [Ack, WriteBatch]
    assert sync.next_deadline() is None


def test_one_batch_in_flight_per_project() -> None:
    """Edits during a flight wait for their own debounce, and a flush during a flight waits for its result."""
    sync = loaded(quiet=0.5, max_wait=2.0)
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}), now=0.0)
    first = cut(sync, 0.5)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=1.0)
    sync.handle_timer(1.5)
    assert sync.take_effects() == []
    status = sync.status(P)
    assert status is not None
    assert (status.in_flight, status.in_flight_mutations, status.pending) == (first.batch_id, 1, 1)
    sync.receive_write_result(P, WriteOk(first.batch_id, (("scenes", scene(S1, 0, 2, heading="a")),)), 2.0)
    second = only(sync.take_effects(), WriteBatch)
    assert second.mutation_ids == ((A, 2),)


def test_edits_during_flight_keep_their_own_debounce() -> None:
    """After a batch returns, edits made meanwhile still wait for their debounce."""
    sync = loaded(quiet=0.5, max_wait=2.0)
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}), now=0.0)
    first = cut(sync, 0.5)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=1.0)
    sync.receive_write_result(P, WriteOk(first.batch_id), 1.25)
    assert not of_type(sync.take_effects(), WriteBatch)
    assert sync.next_deadline() == 1.5
    assert cut(sync, 1.5).mutation_ids == ((A, 2),)


def test_flush_during_flight_sends_after_the_result() -> None:
    """A flush while a batch is in flight sends the next batch as soon as the result arrives."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    first = cut(sync, 5.0)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=5.0)
    send(sync, Flush(3), now=5.0)
    sync.receive_write_result(P, WriteOk(first.batch_id), 5.25)
    assert only(sync.take_effects(), WriteBatch).mutation_ids == ((A, 2),)


def test_flush_with_nothing_pending() -> None:
    """A flush with nothing to save is only acknowledged."""
    sync = loaded()
    assert send(sync, Flush(1)) == [Ack(CONN_A, 1, 0)]


def test_flush_all_at_shutdown() -> None:
    """Shutdown sends every project's pending edits at once, and a flight's successor right after it."""
    sync = loaded()
    sync.open_project(Q, "epoch-q", 0.0)
    sync.take_effects()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    sync.flush_all(0.25)
    batch = only(sync.take_effects(), WriteBatch)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=0.5)
    sync.flush_all(0.5)
    assert sync.take_effects() == []
    assert sync.pending_count() == 2
    sync.receive_write_result(P, WriteOk(batch.batch_id), 0.75)
    assert only(sync.take_effects(), WriteBatch).mutation_ids == ((A, 2),)
    assert sync.pending_count() == 1


# -- results and retries -------------------------------------------------------------------------------


def test_saved_after_write() -> None:
    """After a successful write, Saved names the highest seq whose editor changes are all stored."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync, 5.0)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=5.0)
    sync.receive_write_result(P, WriteOk(batch.batch_id, (("scenes", scene(S1, 0, 2, heading="a")),)), 5.5)
    effects = sync.take_effects()
    assert effects == [RemoveJournal(P, ((A, 1),)), Saved(P, 1)]
    status = sync.status(P)
    assert status is not None
    assert status.saved_seq == 1
    # Saved is only sent when it moves forward.
    second = cut(sync, 10.0)
    sync.receive_write_result(P, WriteOk(second.batch_id, (("scenes", scene(S2, 1, 2, heading="b")),)), 10.5)
    assert only(sync.take_effects(), Saved) == Saved(P, 2)


def test_saved_is_not_repeated() -> None:
    """A write that leaves saved_seq where it was sends no Saved."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    first = cut(sync, 5.0)
    sync.receive_write_result(P, WriteOk(first.batch_id, (("scenes", scene(S1, 0, 2, heading="a")),)), 5.5)
    assert only(sync.take_effects(), Saved) == Saved(P, 1)
    # A journaled edit that changes nothing visible is written at once, without a seq of its own.
    sync.restore([JournalEntry(P, B, 1, Patch(1, "scenes", S1, {"heading": "a"}))])
    second = only(sync.take_effects(), WriteBatch)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=6.0)
    sync.receive_write_result(P, WriteOk(second.batch_id, (("scenes", scene(S1, 0, 2, heading="a")),)), 6.5)
    assert sync.take_effects() == [RemoveJournal(P, ((B, 1),))]


def test_results_for_other_batches_are_ignored() -> None:
    """A result for a batch that is not in flight, or for a project that is not open, is ignored."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync)
    sync.receive_write_result(P, WriteOk(batch.batch_id + 1), 11.0)
    sync.receive_write_result(Q, WriteOk(batch.batch_id), 11.0)
    assert sync.take_effects() == []
    sync.receive_write_result(P, WriteOk(batch.batch_id), 11.0)
    sync.receive_write_result(P, WriteOk(batch.batch_id), 11.0)
    assert len(of_type(sync.take_effects(), RemoveJournal)) == 1


def test_retryable_failure_backs_off() -> None:
    """A retryable failure keeps the edits and retries after exponential, capped, jittered delays."""
    sync = loaded(retry_initial_delay=1.0, retry_max_delay=4.0)
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync, 10.0)
    now = 10.0
    delays = []
    for _ in range(4):
        sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "timeout"), now)
        assert sync.take_effects() == []
        deadline = sync.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        sync.handle_timer(deadline - 0.125)
        assert sync.take_effects() == []
        now = deadline
        sync.handle_timer(now)
        batch = only(sync.take_effects(), WriteBatch)
        assert batch.mutation_ids == ((A, 1),)
    assert delays == [0.75, 1.5, 3.0, 3.0]
    sync.receive_write_result(P, WriteOk(batch.batch_id), now)
    sync.take_effects()
    send(sync, Patch(2, "scenes", S1, {"heading": "b"}), now=now)
    batch = cut(sync, now + 10.0)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "timeout"), now + 10.0)
    assert sync.next_deadline() == now + 10.75  # the backoff started over after the success


def test_rejected_write_tells_editors_and_retries_at_the_cap() -> None:
    """A non-retryable failure keeps the edits, tells every editor, and retries after the maximum delay."""
    sync = loaded(retry_max_delay=30.0)
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync, 10.0)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, False, "check violation on scenes"), 10.0)
    error = only(sync.take_effects(), Error)
    assert (error.conn, error.mid, error.code) == (None, None, "unavailable")
    assert "check violation" not in error.message
    assert sync.next_deadline() == 40.0
    status = sync.status(P)
    assert status is not None
    assert (status.retry_at, status.pending) == (40.0, 1)


def test_failed_batch_merges_under_newer_edits() -> None:
    """After a failure the retry holds the failed edits; edits made during the flight win per field."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "old", "body": "kept"}))
    batch = cut(sync, 10.0)
    send(sync, Patch(2, "scenes", S1, {"heading": "new"}), now=10.0)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "timeout"), 10.25)
    assert sync.take_effects() == []  # the live view did not change
    sync.handle_timer(20.0)
    retry = only(sync.take_effects(), WriteBatch)
    assert retry.ops == (
        UpdateRow("scenes", S1, {"heading": FieldWrite("new", (A, 2)), "body": FieldWrite("kept", (A, 1))}),
    )
    assert retry.mutation_ids == ((A, 1), (A, 2))


def test_flush_during_backoff_waits_for_the_retry() -> None:
    """A flush while a retry is scheduled does not hammer the database; the retry carries the edits."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync, 10.0)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, True, "timeout"), 10.0)
    send(sync, Patch(2, "scenes", S2, {"heading": "b"}), now=10.125)
    assert send(sync, Flush(3), now=10.125) == [Ack(CONN_A, 3, 2)]
    sync.handle_timer(10.75)
    assert only(sync.take_effects(), WriteBatch).mutation_ids == ((A, 1), (A, 2))


def test_flush_all_skips_the_backoff() -> None:
    """At shutdown a scheduled retry is sent at once."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    batch = cut(sync, 10.0)
    sync.receive_write_result(P, WriteFailed(batch.batch_id, False, "rejected"), 10.0)
    sync.take_effects()
    sync.flush_all(10.5)
    assert only(sync.take_effects(), WriteBatch).mutation_ids == ((A, 1),)
    assert sync.next_deadline() is None


def test_next_deadline_is_the_earliest_timer() -> None:
    """The deadline is the earlier of a project's debounce and another project's retry."""
    sync = loaded(quiet=1.0, max_wait=5.0)
    sync.open_project(Q, "epoch-q", 0.0)
    sync.receive_loaded(Q, ProjectRows({"id": Q, "version": 1}), 0.0)
    sync.attach(CONN_B, B, USER, Q, None, 0.0)
    send(sync, Patch(1, "projects", RowId(Q), {"title": "q"}), conn=CONN_B)
    batch = cut(sync, 1.0)
    sync.receive_write_result(Q, WriteFailed(batch.batch_id, True, "timeout"), 1.0)
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}), now=1.0)
    assert sync.next_deadline() == 1.375
    sync.handle_timer(1.375)
    assert only(sync.take_effects(), WriteBatch).project_id == Q
    assert sync.next_deadline() == 2.0


# -- restore -------------------------------------------------------------------------------------------


def test_restore_before_open_replays_at_load_and_saves_at_once() -> None:
    """Journal entries become pending edits at the load, are broadcast, and are written at once."""
    sync = engine()
    entries = [
        JournalEntry(P, A, 3, Patch(3, "scenes", S1, {"heading": "from journal"})),
        JournalEntry(P, A, 4, Insert(4, "clips", {"id": "c-9", "project_id": P, "prompt": "x"})),
    ]
    sync.restore(entries)
    assert sync.pending_count() == 2
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    sync.receive_loaded(P, default_rows(), 0.0)
    effects = sync.take_effects()
    assert not of_type(effects, Append)
    assert not of_type(effects, Ack)
    changes = of_type(effects, Change)
    assert [(c.seq, c.op, c.client_id, c.mid, c.origin) for c in changes] == [
        (1, "update", A, 3, "editor"),
        (2, "insert", A, 4, "editor"),
    ]
    batch = only(effects, WriteBatch)
    assert batch.mutation_ids == ((A, 3), (A, 4))
    snapshot = only(effects, Snapshot)
    assert (snapshot.seq, snapshot.saved_seq) == (2, 0)
    # Their mids count as accepted.
    assert send(sync, Patch(4, "scenes", S1, {"heading": "again"})) == [Ack(CONN_A, 4, 2)]


def test_restore_while_loading_marks_mids_seen() -> None:
    """Entries restored while the project loads wait for the load; their mids are taken at once."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.restore([JournalEntry(P, A, 9, Delete(9, "scenes", S2))])
    sync.receive_loaded(P, default_rows(), 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    effects = sync.take_effects()
    assert only(effects, WriteBatch).mutation_ids == ((A, 9),)
    assert [row["id"] for row in only(effects, Snapshot).scenes] == [S1, S3]
    assert send(sync, Flush(9)) == [Ack(CONN_A, 9, 1)]


def test_restore_into_a_loaded_project_saves_at_once() -> None:
    """Entries for a loaded project apply at once and are written at once (after a batch in flight)."""
    sync = loaded()
    sync.restore([JournalEntry(P, B, 1, Reordered(1, "scenes", ((S1, 5),)))])
    effects = sync.take_effects()
    assert only(effects, Change).set == {"scene_index": 5}
    batch = only(effects, WriteBatch)
    sync.restore([JournalEntry(P, B, 2, Patch(2, "scenes", S1, {"heading": "x"}))])
    assert not of_type(sync.take_effects(), WriteBatch)
    sync.receive_write_result(P, WriteOk(batch.batch_id), 1.0)
    assert only(sync.take_effects(), WriteBatch).mutation_ids == ((B, 2),)


def test_status_of_an_unknown_project() -> None:
    """Status is None for a project that is not open."""
    assert engine().status(P) is None


def test_status_reports_everything_the_daemon_waits_for() -> None:
    """Status counts editors, pending mutations, the batch in flight and the retry."""
    sync = loaded()
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    assert sync.status(P) == ProjectProgress(
        loaded=True,
        editors=1,
        waiting=0,
        pending=1,
        in_flight=None,
        in_flight_mutations=0,
        retry_at=None,
        seq=1,
        saved_seq=0,
        project={"id": P, "title": "Demo", "script": ""},  # as editors see it: no version
    )


def test_status_shows_the_project_row_with_its_unsaved_edits_once_loaded() -> None:
    """The live project row, for lists read from the database: None while loading, edits unsaved included."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    status = sync.status(P)
    assert status is not None
    assert status.project is None
    sync.receive_loaded(P, default_rows(), 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    send(sync, Patch(1, "projects", RowId(P), {"title": "Renamed"}))
    status = sync.status(P)
    assert status is not None
    assert status.project is not None
    assert status.project["title"] == "Renamed"
    assert status.project["script"] == ""


def test_unsaved_count_is_the_status_sum_at_every_step() -> None:
    """The unsaved count is pending plus in flight, as the status reports them, as edits come and go."""
    sync = loaded()
    assert unsaved_count(sync, Q) == 0

    def status_sum() -> int:
        progress = sync.status(P)
        assert progress is not None
        return progress.pending + progress.in_flight_mutations

    assert unsaved_count(sync, P) == status_sum() == 0
    send(sync, Patch(1, "scenes", S1, {"heading": "a"}))
    assert unsaved_count(sync, P) == status_sum() == 1
    batch = cut(sync)  # the first edit goes in flight
    send(sync, Patch(2, "scenes", S1, {"heading": "b"}))
    assert unsaved_count(sync, P) == status_sum() == 2
    sync.receive_write_result(P, WriteOk(batch.batch_id), 1.0)
    assert unsaved_count(sync, P) == status_sum() == 1


def test_constructor_checks_its_durations() -> None:
    """Nonsense timer settings are refused when the engine is built."""
    with pytest.raises(ValueError, match="quiet"):
        SyncEngine(quiet=2.0, max_wait=1.0)
    with pytest.raises(ValueError, match="initial"):
        SyncEngine(retry_initial_delay=0.0)


def test_remote_changes_for_unknown_projects_are_ignored() -> None:
    """Change-feed events and re-reads of projects that are not open are dropped."""
    sync = loaded()
    sync.receive_remote_change(Q, RemoteUpsert("scenes", scene(S1, 0, 9)), 0.0)
    sync.receive_reread(Q, 1, ProjectRows({"id": Q, "version": 1}), 0.0)
    sync.request_reread(Q)
    assert sync.take_effects() == []


def test_request_reread_while_loading_waits_for_the_load() -> None:
    """A re-read asked while the project loads is asked once, right after the load arrives."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.take_effects()
    sync.request_reread(P)
    sync.request_reread(P)
    assert sync.take_effects() == []
    sync.receive_loaded(P, ProjectRows({"id": P, "version": 1}), 0.0)
    rereads = [e for e in sync.take_effects() if isinstance(e, RequestReread)]
    assert len(rereads) == 1
    assert rereads[0].project_id == P


def test_insert_row_op_holds_the_project() -> None:
    """The insert op of a batch holds the row with its project_id."""
    sync = loaded()
    send(sync, Insert(1, "scenes", {"id": "s-9", "heading": "x"}))
    assert cut(sync).ops == (
        InsertRow("scenes", RowId("s-9"), {"id": "s-9", "heading": "x", "project_id": P}, (A, 1)),
    )


def test_rows_of_another_project_are_a_caller_bug() -> None:
    """A load or re-read that returns another project's row is refused before it does harm."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    wrong = ProjectRows({"id": "p-other", "version": 1})
    with pytest.raises(ValueError, match="returned the row of 'p-other'"):
        sync.receive_loaded(P, wrong, 0.0)
    with pytest.raises(ValueError, match="returned the row of 'p-other'"):
        sync.receive_reread(P, 1, wrong, 0.0)
