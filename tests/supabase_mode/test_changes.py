"""Supabase mode end to end: changes of other writers reach editors, editors' edits reach the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from syncd.client import EditorClient, Frame
from tests.supabase_mode.conftest import NO_RESYNC, SLOW_SAVES, WAIT, Stack, converged, new_id
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


async def next_change(editor: EditorClient, row_id: str, op: str | None = None) -> Frame:
    """The next ``change`` frame of row ``row_id`` (and of ``op`` when given) that the editor receives."""
    while True:
        frame = await editor.next_frame("change", timeout=WAIT)
        if frame["id"] == row_id and (op is None or frame["op"] == op):
            return frame


async def test_a_clip_saved_by_the_renderer_reaches_editors_as_a_db_change(stack: Stack) -> None:
    """A clip inserted with supabase-py and the service key reaches every editor as a ``change`` from "db"."""
    daemon = await stack.start_daemon(NO_RESYNC)
    project_id, scenes = await stack.create_project()
    editors = [await stack.editor(daemon, project_id) for _ in range(2)]
    await stack.wait_ready(daemon)
    clip = new_id()
    record = {
        "id": clip,
        "project_id": project_id,
        "scene_id": scenes[0],
        "provider": "veo",
        "prompt": "lighthouse at dawn",
        "file_url": f"projects/{project_id}/clips/{clip}.mp4",
        "status": "ready",
        "duration": 6.0,
    }
    renderer = await stack.renderer()
    await renderer.table("clips").insert(record).execute()
    for editor in editors:
        frame = await next_change(editor, clip, "insert")
        assert frame["origin"] == "db"
        assert frame["client_id"] is None
        assert frame["mid"] is None
        assert {k: frame["row"][k] for k in record} == record
    await converged(stack, project_id, editors)


async def test_each_flush_is_one_syncd_apply_call_with_one_version_step_per_row(stack: Stack) -> None:
    """A burst of patches is one syncd_apply call, each row's version steps once, and editors get saved."""
    daemon = await stack.start_daemon(NO_RESYNC)
    project_id, scenes = await stack.create_project()
    author, watcher = await stack.editor(daemon, project_id), await stack.editor(daemon, project_id)
    before = await stack.db_rows(project_id)
    assert await stack.apply_calls() == 0

    for burst in (1, 2):
        mids = [author.send_patch("scenes", scenes[0], {"body": f"draft {burst}.{i}"}) for i in range(15)]
        mids.append(author.send_patch("scenes", scenes[1], {"heading": f"Cliff {burst}"}))
        mids.append(author.send_patch("projects", project_id, {"title": f"Lighthouse {burst}"}))
        acks = await asyncio.gather(*(author.wait_ack(mid) for mid in mids))
        last = max(ack.seq for ack in acks)
        for editor in (author, watcher):
            saved = await editor.wait_saved(last, timeout=WAIT)
            assert saved.seq >= last
        assert await stack.apply_calls() == burst
        rows = await stack.db_rows(project_id)
        assert rows["scenes"][scenes[0]]["body"] == f"draft {burst}.14"
        assert rows["scenes"][scenes[1]]["heading"] == f"Cliff {burst}"
        assert rows["projects"][project_id]["title"] == f"Lighthouse {burst}"
        for table, row_id in (("scenes", scenes[0]), ("scenes", scenes[1]), ("projects", project_id)):
            assert rows[table][row_id]["version"] == before[table][row_id]["version"] + burst
    recorded = await stack.pool.fetchval(
        "select mid from public.syncd_mutations where client_id = $1", author.client_id
    )
    assert recorded == max(mids) == 34
    await converged(stack, project_id, [author, watcher])


async def pending_edit(
    stack: Stack, editor: EditorClient, table: str, row_id: str, set_: dict[str, Any]
) -> int:
    """Send a patch and return its ack's seq, checking that it is not saved yet (the debounce holds it)."""
    ack = await editor.patch(table, row_id, set_)  # type: ignore[arg-type]
    assert editor.saved_seq < ack.seq
    return ack.seq


async def test_another_writer_on_a_different_field_keeps_both_values(stack: Stack) -> None:
    """A pending edit and another writer's change of another field both end in the DB and every view."""
    daemon = await stack.start_daemon({**SLOW_SAVES, **NO_RESYNC})
    project_id, scenes = await stack.create_project()
    author, watcher = await stack.editor(daemon, project_id), await stack.editor(daemon, project_id)
    await stack.wait_ready(daemon)
    seq = await pending_edit(stack, author, "scenes", scenes[0], {"heading": "mine"})
    await stack.pool.execute("update public.scenes set body = 'theirs' where id = $1", scenes[0])
    assert author.saved_seq < seq
    await author.wait_saved(seq, timeout=WAIT)
    row = (await stack.db_rows(project_id))["scenes"][scenes[0]]
    assert (row["heading"], row["body"]) == ("mine", "theirs")
    await converged(stack, project_id, [author, watcher])


async def test_another_writer_on_the_same_field_loses_to_the_pending_edit(stack: Stack) -> None:
    """Another writer's change of a field with a pending edit loses to it, and every view converges."""
    daemon = await stack.start_daemon({**SLOW_SAVES, **NO_RESYNC})
    project_id, scenes = await stack.create_project()
    author, watcher = await stack.editor(daemon, project_id), await stack.editor(daemon, project_id)
    await stack.wait_ready(daemon)
    seq = await pending_edit(stack, author, "scenes", scenes[0], {"heading": "mine"})
    await stack.pool.execute("update public.scenes set heading = 'theirs' where id = $1", scenes[0])
    assert author.saved_seq < seq
    await author.wait_saved(seq, timeout=WAIT)

    async def db_heading_is_mine() -> bool:
        return bool((await stack.db_rows(project_id))["scenes"][scenes[0]]["heading"] == "mine")

    await wait_for(db_heading_is_mine, "the pending edit in the database", WAIT)
    await converged(stack, project_id, [author, watcher])
    assert author.view.scenes[scenes[0]]["heading"] == "mine"


async def test_a_row_deleted_by_another_writer_drops_pending_edits_with_a_conflict(stack: Stack) -> None:
    """Another writer's delete reaches every editor; the author of a pending edit of the row gets conflict."""
    daemon = await stack.start_daemon({**SLOW_SAVES, **NO_RESYNC})
    project_id, scenes = await stack.create_project()
    author, watcher = await stack.editor(daemon, project_id), await stack.editor(daemon, project_id)
    await stack.wait_ready(daemon)
    await pending_edit(stack, author, "scenes", scenes[1], {"heading": "doomed"})
    await stack.pool.execute("delete from public.scenes where id = $1", scenes[1])
    for editor in (author, watcher):
        frame = await next_change(editor, scenes[1], "delete")
        assert frame["origin"] == "db"
    await author.wait_until(lambda: any(e.code == "conflict" for e in author.errors), timeout=WAIT)
    assert not any(e.code == "conflict" for e in watcher.errors)
    await author.wait_until(lambda: author.saved_seq >= author.seq, timeout=WAIT)
    assert scenes[1] not in (await stack.db_rows(project_id))["scenes"]
    await converged(stack, project_id, [author, watcher])
