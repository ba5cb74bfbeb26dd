"""Two editors on one project, through a real ``syncd run``: they see each other's edits, and it is saved."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from syncd.client import Ack, EditorClient
from tests.e2e.conftest import DaemonFactory, show_project
from tests.support.store import store_rows

SCENE_FIELDS = ("scene_index", "heading", "body", "duration", "voice_id")
CLIP_FIELDS = ("scene_id", "prompt", "status", "order_index", "duration", "metadata")


def _fields(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in names}


async def test_each_editor_sees_the_others_edits_and_both_are_told_they_are_saved(
    start_daemon: DaemonFactory,
) -> None:
    """A patch, insert, delete and reorder by either editor reach the other, then the store and `saved`."""
    daemon = start_daemon()
    project_id = daemon.project_id
    async with (
        EditorClient(daemon.url, project_id) as alice,
        EditorClient(daemon.url, project_id) as bob,
    ):
        first, second, third = (row["id"] for row in alice.view.ordered("scenes"))
        assert bob.view.as_dict() == alice.view.as_dict()

        ack = await alice.patch("scenes", first, {"heading": "Fog over the cliff", "duration": 4.5})
        await bob.wait_seq(ack.seq)
        assert bob.view.scenes[first]["heading"] == "Fog over the cliff"
        assert bob.view.scenes[first]["duration"] == 4.5

        clip_id = str(uuid.uuid4())
        clip = {"id": clip_id, "scene_id": second, "prompt": "a lens turning, slow", "order_index": 0}
        ack = await bob.insert("clips", clip)
        await alice.wait_seq(ack.seq)
        assert alice.view.clips[clip_id]["prompt"] == "a lens turning, slow"
        assert alice.view.clips[clip_id]["project_id"] == project_id

        ack = await alice.delete("scenes", third)
        await bob.wait_seq(ack.seq)
        assert third not in bob.view.scenes

        ack = await bob.reorder("scenes", [second, first])
        await alice.wait_seq(ack.seq)
        assert [row["id"] for row in alice.view.ordered("scenes")] == [second, first]
        assert alice.view.scenes[second]["scene_index"] == 0
        assert alice.view.scenes[first]["scene_index"] == 1

        ack = await bob.patch("projects", project_id, {"title": "The Lighthouse, cut 2"})
        await alice.wait_seq(ack.seq)
        assert alice.view.project is not None
        assert alice.view.project["title"] == "The Lighthouse, cut 2"
        last = ack.seq

        saved_alice = await alice.wait_saved(last)
        saved_bob = await bob.wait_saved(last)
        for saved in (saved_alice, saved_bob):
            assert saved.seq >= last
            assert saved.at is not None
            datetime.fromisoformat(saved.at)
        await bob.wait_seq(alice.seq)
        assert alice.view.as_dict() == bob.view.as_dict()
        view = alice.view

    stored = show_project(daemon, project_id)
    assert stored["project"]["title"] == "The Lighthouse, cut 2"
    assert {row["id"]: _fields(row, SCENE_FIELDS) for row in stored["scenes"]} == {
        row_id: _fields(row, SCENE_FIELDS) for row_id, row in view.scenes.items()
    }
    assert [row["id"] for row in stored["scenes"]] == [second, first]
    assert stored["scenes"][1]["heading"] == "Fog over the cliff"
    # The demo's clips are in too: one of them lost its scene with the delete, in the store and the views.
    assert {row["id"]: _fields(row, CLIP_FIELDS) for row in stored["clips"]} == {
        cid: _fields(row, CLIP_FIELDS) for cid, row in view.clips.items()
    }
    assert clip_id in view.clips


async def test_interleaved_typing_by_two_editors_converges_in_both_views_and_the_store(
    start_daemon: DaemonFactory,
) -> None:
    """Patches that two editors send at once to one field end with the same value everywhere."""
    daemon = start_daemon()
    project_id = daemon.project_id
    async with (
        EditorClient(daemon.url, project_id) as alice,
        EditorClient(daemon.url, project_id) as bob,
    ):
        scene = alice.view.ordered("scenes")[0]["id"]
        sent: list[tuple[EditorClient, int, str]] = []
        for i in range(40):
            editor, name = (alice, "alice") if i % 2 == 0 else (bob, "bob")
            value = f"{name} {i}"
            sent.append((editor, editor.send_patch("scenes", scene, {"body": value}), value))
        acks: list[Ack] = await asyncio.gather(*(editor.wait_ack(mid) for editor, mid, _ in sent))
        seqs = sorted(ack.seq for ack in acks)
        assert seqs == list(range(seqs[0], seqs[0] + 40)), "every patch got its own seq"
        last = seqs[-1]
        expected = sent[max(range(40), key=lambda i: acks[i].seq)][2]
        await alice.wait_seq(last)
        await bob.wait_seq(last)
        assert alice.view.scenes[scene]["body"] == bob.view.scenes[scene]["body"] == expected
        await alice.wait_saved(last)
        await bob.wait_saved(last)

    assert store_rows(daemon.state_dir, "scenes", project_id)[scene]["body"] == expected
