"""What names a mutation, and who may use a client id: per project, bound to one user, one connection.

- A mutation is ``(project, client_id, mid)``: the same client id and mid in two projects are two
  mutations.
- A client id is bound to the first user that attaches with it while the project is open; another user
  is refused, and a newer connection of the same user takes the client id over.
- After a restart, the highest mid per client that the database applied (``ProjectRows.applied``)
  counts as accepted.
- An insert whose id another open project holds is refused before its ack.
"""

from __future__ import annotations

import pytest

from syncd.core.clients import CLIENT_BOUND_MESSAGE, TAKEN_OVER_MESSAGE
from syncd.core.effects import Ack, Append, Change, Disconnect, Error, Presence, Snapshot, Welcome, WriteBatch
from syncd.core.engine import SyncEngine
from syncd.core.ids import ConnId, ProjectId, RowId, UserId
from syncd.core.inputs import Delete, Insert, Patch, ProjectRows, WriteOk
from syncd.core.journal import JournalEntry
from syncd.wire import CLOSE_TAKEN_OVER
from tests.core.builders import (
    CONN_A,
    CONN_B,
    EPOCH,
    S1,
    S2,
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
OTHER_USER = UserId("user-2")
CONN_C = ConnId("conn-c")


def q_rows(*scene_ids: str) -> ProjectRows:
    """Project Q with these scenes."""
    scenes = tuple({**scene(row_id, i), "project_id": Q} for i, row_id in enumerate(scene_ids))
    return ProjectRows({**project_row(), "id": Q}, scenes)


def two_projects() -> SyncEngine:
    """P (default rows) with CONN_A as client A, and Q (scene s-q) with CONN_B as client A too."""
    sync = loaded()
    sync.open_project(Q, EPOCH, 0.0)
    sync.receive_loaded(Q, q_rows("s-q"), 0.0)
    sync.attach(CONN_B, A, USER, Q, None, 0.0)
    sync.take_effects()
    return sync


# -- A: a mutation is named within its project ----------------------------------------------------


def test_same_client_and_mid_in_two_projects_are_two_mutations() -> None:
    """Client A's mid 7 in Q is applied although A's mid 7 (and 9) were accepted in P."""
    sync = two_projects()
    send(sync, Patch(9, "scenes", S1, {"heading": "in P"}))
    effects = send(sync, Patch(7, "scenes", RowId("s-q"), {"heading": "in Q"}), conn=CONN_B)
    assert only(effects, Append).entry.project_id == Q
    assert only(effects, Change).project_id == Q
    assert only(effects, Ack) == Ack(CONN_B, 7, 1)
    # Each project's batch names its own mutations.
    sync.handle_timer(10.0)
    batches = of_type(sync.take_effects(), WriteBatch)
    assert [(b.project_id, b.mutation_ids) for b in batches] == [(P, ((A, 9),)), (Q, ((A, 7),))]


# -- B: a client id is bound to one user ------------------------------------------------------------


def test_another_user_cannot_use_a_bound_client_id() -> None:
    """The first user's client id is refused to any other user of the project, and only in that project."""
    sync = loaded()
    refusal = sync.check_client(P, A, OTHER_USER)
    assert refusal is not None
    assert (refusal.code, refusal.message) == ("forbidden", CLIENT_BOUND_MESSAGE)
    assert sync.check_client(P, A, USER) is None
    assert sync.check_client(P, B, OTHER_USER) is None
    assert sync.check_client(Q, A, OTHER_USER) is None
    with pytest.raises(ValueError, match="bound to another user"):
        sync.attach(CONN_B, A, OTHER_USER, P, None, 0.0)
    assert sync.take_effects() == []


def test_borrowed_client_id_cannot_hide_the_owners_edits() -> None:
    """The owner's later mids still apply: nobody else could send mid 2^53 under its client id."""
    sync = loaded()
    assert sync.check_client(P, A, OTHER_USER) is not None
    effects = send(sync, Patch(2, "scenes", S1, {"heading": "mine"}))
    assert only(effects, Ack) == Ack(CONN_A, 2, 1)
    assert only(effects, Change).set == {"heading": "mine"}


def test_the_binding_lasts_while_the_project_is_open() -> None:
    """Closing the project forgets who used which client id."""
    sync = loaded()
    sync.detach(CONN_A, 0.0)
    assert sync.check_client(P, A, OTHER_USER) is not None
    assert sync.close_project(P)
    sync.open_project(P, EPOCH, 0.0)
    assert sync.check_client(P, A, OTHER_USER) is None


def test_a_newer_connection_takes_the_client_id_over() -> None:
    """The older connection is let go: conflict, close 4409; its later frames get conflict."""
    sync = loaded(conns=((CONN_A, A), (CONN_C, B)))
    sync.attach(CONN_B, A, USER, P, None, 0.0)
    effects = sync.take_effects()
    assert effects[:2] == [
        Error(P, CONN_A, None, "conflict", TAKEN_OVER_MESSAGE),
        Disconnect(CONN_A, CLOSE_TAKEN_OVER, "client id taken over"),
    ]
    assert only(effects, Welcome).conn == CONN_B
    assert only(effects, Presence).editors[0].client_id == B
    assert [e.client_id for e in only(effects, Presence).editors] == [B, A]

    assert send(sync, Patch(1, "scenes", S1, {"heading": "late"})) == [
        Error(P, CONN_A, 1, "conflict", TAKEN_OVER_MESSAGE)
    ]
    assert sync.snapshot_for(CONN_A) is None
    sync.detach(CONN_A, 0.0)  # the gateway reports the close: nothing changes for the others
    assert sync.take_effects() == []
    assert only(send(sync, Patch(1, "scenes", S1, {"heading": "new"}), conn=CONN_B), Ack).mid == 1
    with pytest.raises(ValueError, match="not attached"):
        sync.receive_mutation(CONN_A, Patch(2, "scenes", S1, {"heading": "gone"}), 0.0)


def test_take_over_while_the_project_loads() -> None:
    """A waiting connection is taken over too; only the newer one is welcomed."""
    sync = engine()
    sync.open_project(P, EPOCH, 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.attach(CONN_B, A, USER, P, None, 0.0)
    assert of_type(sync.take_effects(), Disconnect) == [
        Disconnect(CONN_A, CLOSE_TAKEN_OVER, "client id taken over")
    ]
    sync.receive_loaded(P, default_rows(), 0.0)
    effects = sync.take_effects()
    assert [w.conn for w in of_type(effects, Welcome)] == [CONN_B]
    assert [s.conn for s in of_type(effects, Snapshot)] == [CONN_B]


# -- C: what the database applied counts as accepted after a restart --------------------------------


def test_mids_the_database_applied_are_acked_not_applied() -> None:
    """A resent mid at or below the database's highest for its client changes nothing; higher ones apply."""
    rows = ProjectRows(project_row(), (scene(S1, 0),), applied={A: 5, B: 2})
    sync = loaded(rows)
    for mid in (1, 5):
        effects = send(sync, Delete(mid, "scenes", S1))
        assert effects == [Ack(CONN_A, mid, 0)]
    assert send(sync, Insert(3, "scenes", {"id": "s-9", "scene_index": 4}), conn=CONN_A) == [
        Ack(CONN_A, 3, 0)
    ]
    effects = send(sync, Patch(6, "scenes", S1, {"heading": "new"}))
    assert only(effects, Ack) == Ack(CONN_A, 6, 1)


def test_applied_mids_and_the_journal_together() -> None:
    """The journal's entries and the database's mids both count; the higher wins."""
    sync = engine()
    sync.restore([JournalEntry(P, A, 8, Patch(8, "scenes", S1, {"heading": "j"}))])
    sync.open_project(P, EPOCH, 0.0)
    sync.receive_loaded(P, ProjectRows(project_row(), (scene(S1, 0),), applied={A: 3}), 0.0)
    sync.attach(CONN_A, A, USER, P, None, 0.0)
    sync.take_effects()
    assert send(sync, Patch(8, "scenes", S1, {"heading": "again"}))[0] == Ack(CONN_A, 8, 1)


@pytest.mark.parametrize("applied", [{1: 2}, {A: "2"}, {A: 2.0}, {A: True}])
def test_applied_mids_must_be_client_ids_and_integers(applied: dict[object, object]) -> None:
    """A malformed ``applied`` is an adapter bug."""
    with pytest.raises(ValueError, match="applied mids"):
        ProjectRows(project_row(), applied=applied)  # type: ignore[arg-type]


# -- D: an id held by another project -----------------------------------------------------------------


def test_insert_of_an_id_another_open_project_holds_is_refused_before_ack() -> None:
    """Saved or pending in the other project: conflict with the words of a taken id, nothing journaled."""
    sync = two_projects()
    send(sync, Insert(1, "scenes", {"id": "s-new", "scene_index": 5}), conn=CONN_B)
    for row_id in ("s-q", "s-new"):
        effects = send(sync, Insert(2, "scenes", {"id": row_id, "scene_index": 9}))
        assert effects == [
            Error(P, CONN_A, 2, "conflict", f"row {row_id!r} already exists in table 'scenes'")
        ]
    # The other project's rows are untouched, and this project can still insert fresh ids.
    assert only(send(sync, Insert(3, "scenes", {"id": "s-fresh", "scene_index": 9})), Ack).mid == 3


def test_insert_the_save_finds_taken_is_dropped_like_a_deleted_row() -> None:
    """An id held by a project that is not open is only found by the save: the row goes, the author hears."""
    sync = loaded()
    send(sync, Insert(1, "scenes", {"id": "s-x", "scene_index": 5}))
    batch = cut(sync)
    sync.receive_write_result(P, WriteOk(batch.batch_id, missing=(("scenes", RowId("s-x")),)), 11.0)
    effects = sync.take_effects()
    error = only(effects, Error)
    assert (error.conn, error.mid, error.code) == (CONN_A, 1, "conflict")
    assert "another project" not in error.message
    assert "exists" not in error.message
    assert [(c.op, c.id) for c in of_type(effects, Change)] == [("delete", "s-x")]
    assert S2 in {row["id"] for row in sync.snapshot_for(CONN_A).scenes}  # type: ignore[union-attr]
