"""Resuming with ``{epoch, seq}``: exactly the missed changes, or a snapshot when they cannot be replayed."""

from __future__ import annotations

from typing import Any

from syncd.client import EditorClient
from tests.e2e.conftest import NO_SAVES, DaemonFactory, RawFactory
from tests.support.editor import Frame, RawEditor

HISTORY = 3
RESUME_ENV = {**NO_SAVES, "SYNCD_ENGINE__HISTORY_SIZE": str(HISTORY)}
SCENE_FIELDS = ("id", "scene_index", "heading", "body", "duration")


async def _leave(raw_editor: RawFactory, url: str, project_id: str) -> tuple[str, str, int]:
    """Join as a raw editor and disconnect; return its client id and where it stopped (epoch, seq)."""
    editor = await raw_editor(url)
    snapshot = await editor.join(project_id)
    await editor.ws.close()
    return editor.client_id, snapshot["epoch"], snapshot["seq"]


async def _edits_while_away(writer: EditorClient, count: int) -> list[Frame]:
    """Make ``count`` patches; return their ``change`` frames as the writer got them."""
    scene = writer.view.ordered("scenes")[0]["id"]
    for i in range(count):
        await writer.patch("scenes", scene, {"heading": f"missed {i}"})
    return [await writer.next_frame("change") for _ in range(count)]


async def _rejoin(
    raw_editor: RawFactory, url: str, project_id: str, client_id: str, resume: tuple[str, int]
) -> tuple[Frame, list[Frame]]:
    """Reconnect with ``resume``; return the welcome and every frame up to a pong (presence left out)."""
    editor: RawEditor = await raw_editor(url, client_id=client_id)
    await editor.hello(project_id, resume=resume)
    # The daemon reads the ping only after it has sent what the hello asked for: the pong closes it off.
    await editor.send({"type": "ping", "t": "end"})
    welcome = await editor.expect("welcome")
    return welcome, await editor.frames_until("pong")


def _scenes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: row[name] for name in SCENE_FIELDS} for row in rows]


async def test_resume_replays_exactly_the_missed_changes(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """An editor that resumes in the current epoch gets the changes it missed, in order, and no snapshot."""
    daemon = start_daemon(RESUME_ENV)
    async with EditorClient(daemon.url, daemon.project_id) as writer:
        await writer.patch("projects", daemon.project_id, {"title": "before the break"})
        await writer.next_frame("change")
        client_id, epoch, seq = await _leave(raw_editor, daemon.url, daemon.project_id)
        missed = await _edits_while_away(writer, HISTORY)

        welcome, frames = await _rejoin(raw_editor, daemon.url, daemon.project_id, client_id, (epoch, seq))

    assert welcome["epoch"] == epoch
    assert welcome["seq"] == seq + HISTORY
    assert frames == [*missed, {"type": "pong", "t": "end"}]
    assert [frame["seq"] for frame in missed] == [seq + 1, seq + 2, seq + 3]


async def test_resume_with_an_unknown_epoch_gets_a_snapshot(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """An editor that resumes with an epoch the daemon does not know gets a snapshot of the current state."""
    daemon = start_daemon(RESUME_ENV)
    async with EditorClient(daemon.url, daemon.project_id) as writer:
        client_id, epoch, seq = await _leave(raw_editor, daemon.url, daemon.project_id)
        await _edits_while_away(writer, 2)

        welcome, frames = await _rejoin(
            raw_editor, daemon.url, daemon.project_id, client_id, ("0123456789abcdef", seq)
        )
        view = writer.view.as_dict()

    assert [frame["type"] for frame in frames] == ["snapshot", "pong"]
    snapshot = frames[0]
    assert snapshot["epoch"] == welcome["epoch"] == epoch
    assert snapshot["seq"] == welcome["seq"] == seq + 2
    assert _scenes(snapshot["scenes"]) == _scenes(view["scenes"])
    assert snapshot["scenes"][0]["heading"] == "missed 1"


async def test_resume_from_a_seq_older_than_the_history_gets_a_snapshot(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """An editor that missed more changes than the history keeps gets a snapshot at the current seq."""
    daemon = start_daemon(RESUME_ENV)
    async with EditorClient(daemon.url, daemon.project_id) as writer:
        client_id, epoch, seq = await _leave(raw_editor, daemon.url, daemon.project_id)
        await _edits_while_away(writer, HISTORY + 1)

        welcome, frames = await _rejoin(raw_editor, daemon.url, daemon.project_id, client_id, (epoch, seq))
        view = writer.view.as_dict()

    assert [frame["type"] for frame in frames] == ["snapshot", "pong"]
    snapshot = frames[0]
    assert snapshot["epoch"] == welcome["epoch"] == epoch
    assert snapshot["seq"] == welcome["seq"] == seq + HISTORY + 1
    assert _scenes(snapshot["scenes"]) == _scenes(view["scenes"])
    assert snapshot["scenes"][0]["heading"] == f"missed {HISTORY}"
