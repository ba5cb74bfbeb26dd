"""Bad input gets the documented ``error`` frame and changes nothing; the connection stays usable."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from syncd.client import EditorClient, EditorError
from tests.e2e.conftest import SHARED_MAX_FRAME, RawFactory, seed_project
from tests.support.daemon import DaemonProcess
from tests.support.editor import Frame, RawEditor
from tests.support.store import query

BAD_MID = 7


@dataclass
class Session:
    """An editor joined to a fresh project of the shared daemon."""

    editor: RawEditor
    project_id: str
    scenes: list[str]
    seq: int


@pytest.fixture
async def session(shared_daemon: DaemonProcess, raw_editor: RawFactory) -> Session:
    """A raw editor on a new project with two scenes."""
    project_id, scenes = await seed_project(shared_daemon, "Bad input")
    editor = await raw_editor(shared_daemon.url)
    snapshot = await editor.join(project_id)
    editor.next_mid = BAD_MID + 1
    return Session(editor, project_id, scenes, snapshot["seq"])


async def _still_usable(session: Session) -> None:
    """A valid patch is acked with the next seq: the bad frame before it took no seq and changed nothing."""
    editor = session.editor
    mid = await editor.patch("scenes", session.scenes[0], {"heading": f"valid {editor.next_mid}"})
    frames = await editor.frames_until("ack")
    assert [frame["type"] for frame in frames] == ["change", "ack"], frames
    change, ack = frames
    assert change["seq"] == ack["seq"] == session.seq + 1
    assert change["mid"] == ack["mid"] == mid
    assert change["set"] == {"heading": f"valid {mid}"}
    session.seq += 1


def _patch(scene: str, **fields: Any) -> Frame:
    return {
        "type": "patch",
        "mid": BAD_MID,
        "table": "scenes",
        "id": scene,
        "set": {"heading": "x"},
        **fields,
    }


FrameMaker = Callable[[str], Frame | str]

BAD_FRAMES: list[tuple[str, FrameMaker, str, str, int | None]] = [
    (
        "malformed JSON",
        lambda s: '{"type": "patch", "mid": 7, "table": "scenes"',
        "bad_request",
        "not valid JSON",
        None,
    ),
    ("not an object", lambda s: '["patch", 7]', "bad_request", "JSON object", None),
    ("unknown type", lambda s: {**_patch(s), "type": "rename"}, "bad_request", "'rename'", BAD_MID),
    ("unknown frame field", lambda s: _patch(s, colour="red"), "bad_request", "colour", BAD_MID),
    (
        "missing field",
        lambda s: {k: v for k, v in _patch(s).items() if k != "id"},
        "bad_request",
        "id",
        BAD_MID,
    ),
    ("unknown table", lambda s: _patch(s, table="voices"), "bad_request", "table", BAD_MID),
    ("unknown row field", lambda s: _patch(s, set={"colour": "red"}), "bad_request", "colour", BAD_MID),
    ("read-only field", lambda s: _patch(s, set={"version": 99}), "bad_request", "version", BAD_MID),
    ("wrong value type", lambda s: _patch(s, set={"duration": "long"}), "bad_request", "duration", BAD_MID),
    ("wrong field type", lambda s: _patch(s, id=42), "bad_request", "id", BAD_MID),
    (
        # PostgreSQL cannot store it: accepted, it made every later save of the project fail.
        "NUL in text",
        lambda s: _patch(s, set={"heading": "a\x00b"}),
        "bad_request",
        "set.heading: text holds a NUL character",
        BAD_MID,
    ),
    ("mid not a number", lambda s: _patch(s, mid="seven"), "bad_request", "mid", None),
    ("unknown row", lambda s: _patch(s, id=str(uuid.uuid4())), "not_found", "no row", BAD_MID),
    (
        "oversized frame",
        lambda s: _patch(s, set={"body": "x" * SHARED_MAX_FRAME}),
        "too_large",
        f"over the limit of {SHARED_MAX_FRAME} bytes",
        BAD_MID,
    ),
]


@pytest.mark.parametrize(
    ("make", "code", "fragment", "mid"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_FRAMES],
)
async def test_a_bad_frame_gets_an_error_naming_the_problem_and_changes_nothing(
    session: Session, make: FrameMaker, code: str, fragment: str, mid: int | None
) -> None:
    """Each kind of bad frame is answered with its error code, a message naming the problem and its mid."""
    await session.editor.send(make(session.scenes[1]))
    error = await session.editor.expect("error")
    assert error["code"] == code
    assert fragment in error["message"]
    assert error["mid"] == mid
    await _still_usable(session)


async def _quiet(editor: RawEditor) -> list[Frame]:
    """Every frame an editor got up to the answer of a ping: the ping orders after all before it."""
    await editor.send({"type": "ping", "t": "barrier"})
    return [frame for frame in await editor.frames_until("pong") if frame["type"] != "pong"]


async def test_mutations_aimed_at_another_project_are_refused_and_change_nothing(
    shared_daemon: DaemonProcess, session: Session, raw_editor: RawFactory
) -> None:
    """An insert into another project, or a patch or delete of its rows, is refused on both projects."""
    other_id, other_scenes = await seed_project(shared_daemon, "Someone else's")
    watcher = await raw_editor(shared_daemon.url)
    other_before = await watcher.join(other_id)
    editor = session.editor
    clip_id = str(uuid.uuid4())

    await editor.send(
        {
            "type": "insert",
            "mid": 7,
            "table": "clips",
            "row": {"id": clip_id, "project_id": other_id, "scene_id": other_scenes[0], "prompt": "stolen"},
        }
    )
    error = await editor.expect("error")
    assert (error["code"], error["mid"]) == ("forbidden", 7)
    assert "this connection's project" in error["message"]
    await _still_usable(session)

    await editor.send(
        {"type": "patch", "mid": 20, "table": "scenes", "id": other_scenes[0], "set": {"body": "x"}}
    )
    error = await editor.expect("error")
    assert (error["code"], error["mid"]) == ("not_found", 20)
    assert other_scenes[0] in error["message"]
    editor.next_mid = 21
    await _still_usable(session)

    await editor.send({"type": "delete", "mid": 30, "table": "scenes", "id": other_scenes[1]})
    error = await editor.expect("error")
    assert (error["code"], error["mid"]) == ("not_found", 30)
    editor.next_mid = 31
    await _still_usable(session)

    await editor.send(
        {"type": "patch", "mid": 40, "table": "projects", "id": other_id, "set": {"title": "x"}}
    )
    error = await editor.expect("error")
    assert (error["code"], error["mid"]) == ("forbidden", 40)
    editor.next_mid = 41
    await _still_usable(session)

    assert await _quiet(watcher) == [], "the other project's editor saw a change"
    fresh = await raw_editor(shared_daemon.url)
    other_after = await fresh.join(other_id)
    assert other_after["seq"] == other_before["seq"]
    assert other_after["scenes"] == other_before["scenes"]
    assert other_after["clips"] == []
    assert other_after["project"]["title"] == other_before["project"]["title"]


async def test_a_duplicate_mid_is_acknowledged_again_and_applied_once(
    shared_daemon: DaemonProcess, session: Session, raw_editor: RawFactory
) -> None:
    """A mid sent again, on the same or a new connection of the client, gets the same ack and no change."""
    editor = session.editor
    scene = session.scenes[0]
    await editor.send({"type": "patch", "mid": 1, "table": "scenes", "id": scene, "set": {"body": "first"}})
    change, ack = await editor.frames_until("ack")
    assert (change["type"], change["seq"], ack["seq"]) == ("change", session.seq + 1, session.seq + 1)

    await editor.send({"type": "patch", "mid": 1, "table": "scenes", "id": scene, "set": {"body": "second"}})
    assert await editor.frames_until("ack") == [ack]

    again = await raw_editor(shared_daemon.url, client_id=editor.client_id)
    await again.join(session.project_id)
    await again.send({"type": "patch", "mid": 1, "table": "scenes", "id": scene, "set": {"body": "third"}})
    assert await again.frames_until("ack") == [ack]
    # The new connection took the client id over (the first one is closed with 4409).
    assert await _quiet(again) == [], "a duplicate made a change"

    await again.send({"type": "flush", "mid": 2})
    await again.expect("ack")
    saved = (await again.frames_until("saved"))[-1]
    assert saved["seq"] >= ack["seq"]
    store = shared_daemon.state_dir / "store.db"
    ((body,),) = query(store, "select body from scenes where id = ?", (scene,))
    # A flush is not an edit, so the client's highest recorded mid stays 1.
    ((recorded,),) = query(store, "select mid from syncd_mutations where client_id = ?", (editor.client_id,))
    assert (body, recorded) == ("first", 1)


async def test_the_python_client_refuses_a_mutation_over_the_frame_limit_itself(
    shared_daemon: DaemonProcess,
) -> None:
    """Sent, a patch over four times the limit would close the socket (1009) again at every resend."""
    project_id, scenes = await seed_project(shared_daemon, "Too large")
    async with EditorClient(shared_daemon.url, project_id, max_frame_bytes=SHARED_MAX_FRAME) as editor:
        with pytest.raises(
            EditorError, match=r"^too_large: the patch frame is 20,\d{3} bytes, over the limit of 4,096"
        ):
            await editor.patch("scenes", scenes[0], {"body": "x" * 5 * SHARED_MAX_FRAME})
        assert (editor.unacked, editor.next_mid) == ([], 1)  # nothing kept to resend, no mid used
        ack = await editor.patch("scenes", scenes[0], {"body": "fits"})
        assert ack.mid == 1
