"""Client ids against a real ``syncd run``: a mutation is named by (project, client id, mid) everywhere.

Client ids are public (``presence`` and ``change`` frames show them), so these tests play an editor
that uses another editor's client id and mids: in another project (its edits must not stand in for the
victim's, in the store or in the outbox), in the same project (it takes the client id over, visibly),
after a restart (a resent old mid is acknowledged, not applied again), and with a row id of another
project (refused, or dropped after the save, without saying where the id lives).
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from syncd.wire import CLOSE_TAKEN_OVER
from tests.e2e.conftest import NO_SAVES, WAIT, DaemonFactory, RawFactory, seed_project
from tests.support.editor import Frame, RawEditor
from tests.support.store import store_rows
from tests.support.waiting import wait_for


async def _editor(
    raw_editor: RawFactory, url: str, project_id: str, client_id: str
) -> tuple[RawEditor, Frame]:
    """A raw editor with this client id, joined to the project; returns it and its snapshot."""
    editor = await raw_editor(url, client_id=client_id)
    return editor, await editor.join(project_id)


async def _send(editor: RawEditor, frame: dict[str, Any]) -> list[Frame]:
    """Send a mutation; return every frame up to its ``ack`` or ``error`` (presence left out)."""
    await editor.send(frame)
    frames = []
    while True:
        got = await editor.recv()
        if got["type"] == "presence":
            continue
        frames.append(got)
        if got["type"] in ("ack", "error") and got.get("mid") == frame["mid"]:
            return frames


def _patch(mid: int, row_id: str, **values: Any) -> dict[str, Any]:
    """A ``patch`` of a scene."""
    return {"type": "patch", "mid": mid, "table": "scenes", "id": row_id, "set": values}


async def _acked(editor: RawEditor, frame: dict[str, Any]) -> None:
    """Send a mutation that must be acknowledged."""
    answer = (await _send(editor, frame))[-1]
    assert answer["type"] == "ack", answer


async def _saved(editor: RawEditor, mid: int) -> None:
    """Flush with ``mid`` and wait until a ``saved`` covers everything so far."""
    await editor.send({"type": "flush", "mid": mid})
    ack = await _next(editor, "ack")
    assert ack["mid"] == mid
    while True:
        frame = await _next(editor, "saved")
        if frame["seq"] >= ack["seq"]:
            return


async def _next(editor: RawEditor, kind: str) -> Frame:
    """The next frame of type ``kind``, passing over any other."""
    while True:
        frame = await editor.recv()
        if frame["type"] == kind:
            return frame


def _outbox(state_dir: Path) -> list[tuple[str, str, int]]:
    """The outbox's journal rows as (project_id, client_id, mid), read straight from the file."""
    db = sqlite3.connect(f"file:{state_dir / 'outbox.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("select project_id, client_id, mid from journal order by seq").fetchall()
    finally:
        db.close()
    return [(str(p), str(c), int(m)) for p, c, m in rows]


# -- A: one client id in two projects -----------------------------------------------------------------


async def test_the_same_client_and_mids_in_another_project_do_not_hide_saved_edits(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """P2's mutations (client C, mids 1-2) in the store do not make P1's (C, 1) count as applied there."""
    daemon = start_daemon(NO_SAVES)
    p1, (s1, _) = await seed_project(daemon, "P1")
    p2, (s2, _) = await seed_project(daemon, "P2")
    client = str(uuid.uuid4())
    other, _ = await _editor(raw_editor, daemon.url, p2, client)
    await _acked(other, _patch(1, s2, body="p2"))
    await _saved(other, 2)

    victim, _ = await _editor(raw_editor, daemon.url, p1, client)
    await _acked(victim, _patch(1, s1, body="p1"))
    await _saved(victim, 2)
    assert store_rows(daemon.state_dir, "scenes", p1)[s1]["body"] == "p1"
    assert store_rows(daemon.state_dir, "scenes", p2)[s2]["body"] == "p2"


async def test_saving_another_project_keeps_the_acked_entry_across_kill_9(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """P2's save trims only P2's journal entries: P1's acked insert, same (C, mid), survives kill -9."""
    daemon = start_daemon(NO_SAVES)
    state = daemon.state_dir
    p1, (s1, _) = await seed_project(daemon, "P1")
    p2, (s2, _) = await seed_project(daemon, "P2")
    client = str(uuid.uuid4())
    victim, _ = await _editor(raw_editor, daemon.url, p1, client)
    clip = str(uuid.uuid4())
    insert = {
        "type": "insert",
        "mid": 5,
        "table": "clips",
        "row": {"id": clip, "scene_id": s1, "prompt": "kept"},
    }
    await _acked(victim, insert)

    other, _ = await _editor(raw_editor, daemon.url, p2, client)
    await _acked(other, _patch(5, s2, body="p2"))
    await _saved(other, 6)
    await wait_for(
        lambda: (p2, client, 5) not in _outbox(state), "P2's entries trimmed from the outbox", WAIT
    )
    assert (p1, client, 5) in _outbox(state)

    daemon.kill()
    daemon.start()
    await wait_for(
        lambda: clip in store_rows(state, "clips", p1), "P1's acked insert replayed into the store", WAIT
    )
    assert store_rows(state, "clips", p1)[clip]["prompt"] == "kept"


# -- B: one client id in one project ------------------------------------------------------------------


async def test_a_borrowed_client_id_takes_over_visibly_and_hides_nothing(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """A second connection with a client id in use closes the first with 4409; the owner's edits stay its own.

    Every editor of this project is the same (anonymous) user, so the second connection is let in; the
    first hears why it is closed instead of having its later mids swallowed, and a fresh client id
    (what docs/protocol.md asks after 4409) keeps editing and saving.
    """
    daemon = start_daemon(NO_SAVES)
    project, (scene, _) = await seed_project(daemon, "B")
    victim, _ = await _editor(raw_editor, daemon.url, project, str(uuid.uuid4()))
    await _acked(victim, _patch(1, scene, body="v1"))

    borrower, _ = await _editor(raw_editor, daemon.url, project, victim.client_id)
    code, frames = await victim.closed()
    assert code == CLOSE_TAKEN_OVER
    errors = [f for f in frames if f["type"] == "error"]
    assert [(e["code"], e["mid"]) for e in errors] == [("conflict", None)]
    await _acked(borrower, _patch(2**53, scene, heading="borrowed"))

    again, snapshot = await _editor(raw_editor, daemon.url, project, str(uuid.uuid4()))
    presence = [e["client_id"] for e in (await _next(again, "presence"))["editors"]]
    assert victim.client_id in presence  # the borrower, under the victim's old client id
    assert [f["type"] for f in await _send(again, _patch(2, scene, body="v2"))] == ["change", "ack"]
    await _saved(again, 3)
    assert store_rows(daemon.state_dir, "scenes", project)[scene]["body"] == "v2"
    assert snapshot["scenes"][0]["body"] == "v1"


# -- C: mids applied before a restart -----------------------------------------------------------------


async def test_a_saved_mid_resent_after_a_restart_is_acked_not_applied(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """Insert then delete a clip, save, restart: resending the insert gets an ack and brings nothing back."""
    daemon = start_daemon(NO_SAVES)
    project, (scene, _) = await seed_project(daemon, "C")
    editor, _ = await _editor(raw_editor, daemon.url, project, str(uuid.uuid4()))
    clip = str(uuid.uuid4())
    insert = {"type": "insert", "mid": 1, "table": "clips", "row": {"id": clip, "scene_id": scene}}
    await _acked(editor, insert)
    await _acked(editor, {"type": "delete", "mid": 2, "table": "clips", "id": clip})
    await _saved(editor, 3)
    assert clip not in store_rows(daemon.state_dir, "clips", project)
    assert daemon.terminate() == 0

    daemon.start()
    again, snapshot = await _editor(raw_editor, daemon.url, project, editor.client_id)
    assert snapshot["clips"] == []
    frames = await _send(again, insert)
    assert frames == [{"type": "ack", "mid": 1, "seq": snapshot["seq"]}]
    assert [f["type"] for f in await _send(again, _patch(4, scene, body="after"))] == ["change", "ack"]
    await _saved(again, 5)
    assert clip not in store_rows(daemon.state_dir, "clips", project)
    assert store_rows(daemon.state_dir, "scenes", project)[scene]["body"] == "after"


# -- D: a row id of another project -------------------------------------------------------------------


async def test_an_insert_with_another_projects_row_id_is_refused_or_dropped_saying_nothing_of_it(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """Open elsewhere: refused before the ack, like an id taken here. Not open: dropped after the save."""
    daemon = start_daemon(NO_SAVES)
    open_elsewhere, (theirs, _) = await seed_project(daemon, "open")
    closed_elsewhere, (hidden, _) = await seed_project(daemon, "closed")
    mine, (own, _) = await seed_project(daemon, "mine")
    await _editor(raw_editor, daemon.url, open_elsewhere, str(uuid.uuid4()))
    editor, _ = await _editor(raw_editor, daemon.url, mine, str(uuid.uuid4()))

    taken_here = await _send(editor, {"type": "insert", "mid": 1, "table": "scenes", "row": {"id": own}})
    taken_there = await _send(editor, {"type": "insert", "mid": 2, "table": "scenes", "row": {"id": theirs}})
    assert [f["type"] for f in taken_there] == ["error"]
    assert taken_there[0]["code"] == taken_here[0]["code"] == "conflict"
    assert taken_there[0]["message"] == taken_here[0]["message"].replace(own, theirs)

    frames = await _send(editor, {"type": "insert", "mid": 3, "table": "scenes", "row": {"id": hidden}})
    assert [f["type"] for f in frames] == ["change", "ack"]
    await editor.send({"type": "flush", "mid": 4})
    after = await editor.frames_until("saved")
    errors = [f for f in after if f["type"] == "error"]
    assert [(e["code"], e["mid"]) for e in errors] == [("conflict", 3)]
    assert "project" not in errors[0]["message"]
    assert ("delete", hidden) in [(f.get("op"), f.get("id")) for f in after if f["type"] == "change"]
    before = store_rows(daemon.state_dir, "scenes", closed_elsewhere)[hidden]
    assert before["heading"] == "Scene 1"
    assert before["version"] == 1
    assert hidden not in store_rows(daemon.state_dir, "scenes", mine)
