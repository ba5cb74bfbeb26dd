"""``kill -9`` of ``syncd run`` right after an ack: a restart on the same state directory keeps the edit."""

from __future__ import annotations

import asyncio
import uuid

from syncd.client import EditorClient
from syncd.projects import DEMO_CLIPS
from tests.e2e.conftest import NO_SAVES, WAIT, DaemonFactory, RawFactory
from tests.support.store import store_rows
from tests.support.waiting import wait_for


async def test_edits_acknowledged_before_kill_9_reach_the_store_and_a_new_snapshot(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """Every acked edit, only in the outbox when the daemon is killed, is saved and served after a restart."""
    daemon = start_daemon(NO_SAVES)
    project_id = daemon.project_id
    state = daemon.state_dir
    editor = EditorClient(daemon.url, project_id, request_timeout=5.0)
    welcome = await editor.connect()
    scene = editor.view.ordered("scenes")[0]["id"]
    old_body = store_rows(state, "scenes", project_id)[scene]["body"]
    clip_id = str(uuid.uuid4())
    mids = [editor.send_patch("scenes", scene, {"body": f"draft {i}"}) for i in range(20)]
    mids.append(editor.send_insert("clips", {"id": clip_id, "scene_id": scene, "prompt": "dawn, wide"}))
    await asyncio.gather(*(editor.wait_ack(mid) for mid in mids))
    daemon.kill()
    await editor.close()

    # The debounce had not fired: the edits were in the outbox only, not in the store.
    assert store_rows(state, "scenes", project_id)[scene]["body"] == old_body
    assert clip_id not in store_rows(state, "clips", project_id)

    daemon.start()
    await wait_for(
        lambda: (
            store_rows(state, "scenes", project_id)[scene]["body"] == "draft 19"
            and clip_id in store_rows(state, "clips", project_id)
        ),
        "the replayed edits in the store",
        WAIT,
    )
    assert store_rows(state, "clips", project_id)[clip_id]["prompt"] == "dawn, wide"

    fresh = await raw_editor(daemon.url)
    snapshot = await fresh.join(project_id)
    assert snapshot["epoch"] != welcome.epoch
    assert {row["id"]: row["body"] for row in snapshot["scenes"]}[scene] == "draft 19"
    clips = {row["id"]: row for row in snapshot["clips"]}
    assert set(clips) == {clip_id, *(clip["id"] for clip in DEMO_CLIPS)}  # the demo's clips and the new one
    assert clips[clip_id]["prompt"] == "dawn, wide"
