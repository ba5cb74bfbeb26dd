"""Supabase mode: readiness, the project commands, idle close, and a ``kill -9`` in the middle of a flush."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.supabase_mode.conftest import (
    NO_RESYNC,
    WAIT,
    Stack,
    converged,
    new_id,
    syncd_cli,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


async def test_readyz_follows_the_realtime_socket_and_subscriptions(stack: Stack) -> None:
    """/readyz is 503 with a reason while Realtime is unreachable or not yet subscribed, else 200."""
    faults = stack.supabase.faults
    faults.refuse_handshake = 500
    daemon = await stack.start_daemon(NO_RESYNC)
    status, body = await stack.readyz(daemon)
    assert (status, body["ready"]) == (503, False)
    assert "not connected" in body["reason"]
    faults.refuse_handshake = None
    await stack.wait_ready(daemon)

    project_id, _ = await stack.create_project()
    faults.subscribed_delay = 1.5
    await stack.editor(daemon, project_id)
    status, body = await stack.readyz(daemon)
    assert status == 503
    assert "not yet subscribed" in body["reason"]
    await stack.wait_ready(daemon)
    status, body = await stack.readyz(daemon)
    assert body == {"ready": True, "reason": "Realtime subscribed for 1 project(s)"}

    faults.subscribed_delay = 0.0
    faults.refuse_handshake = 503
    await stack.supabase.realtime.drop_sockets(1006)

    async def down() -> bool:
        status, body = await stack.readyz(daemon)
        return status == 503 and "not connected" in body["reason"]

    await wait_for(down, "/readyz to report the socket down", WAIT)
    lost = f"WARNING syncd.adapters.supabase: Realtime socket to {stack.supabase.url} lost; reconnecting."
    await wait_for(
        lambda: lost in daemon.stderr, lambda: f"the lost socket in the log:\n{daemon.stderr}", WAIT
    )
    faults.refuse_handshake = None
    await stack.wait_ready(daemon, timeout=20)
    back = f"INFO syncd.adapters.supabase: Realtime socket to {stack.supabase.url} is back\n"
    await wait_for(
        lambda: back in daemon.stderr, lambda: f"the socket back in the log:\n{daemon.stderr}", WAIT
    )
    assert daemon.stderr.count(lost) == 1


async def test_project_commands_work_in_supabase_mode(stack: Stack) -> None:
    """``syncd project create``, ``list`` and ``show`` read and write the Supabase project's database."""
    env = stack.env()
    state = stack.tmp_path / "cli"
    code, out, err = await syncd_cli(env, state, "project", "create", "From the CLI")
    assert (code, err) == (0, "")  # stderr is for errors: no log line of the backend's
    project_id = out.strip()
    row = await stack.pool.fetchrow(
        "select title, user_id from public.projects where id = $1::uuid", project_id
    )
    assert row is not None
    assert (row["title"], row["user_id"]) == ("From the CLI", None)
    await stack.pool.execute(
        "insert into public.scenes (project_id, heading, scene_index) values ($1::uuid, 'Opening', 0)",
        project_id,
    )

    code, out, err = await syncd_cli(env, state, "project", "list")
    assert (code, err) == (0, "")
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(cols[0], cols[2], cols[3]) for cols in lines] == [(project_id, "anonymous", "From the CLI")]

    code, out, err = await syncd_cli(env, state, "project", "show", project_id)
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["project"]["title"] == "From the CLI"
    assert [scene["heading"] for scene in shown["scenes"]] == ["Opening"]
    assert shown["clips"] == []

    code, out, err = await syncd_cli(env, state, "project", "show", new_id())
    assert code == 1
    assert "does not exist" in err

    stranger = new_id()
    code, out, err = await syncd_cli(env, state, "project", "create", "Nobody's", "--user", stranger)
    assert (code, out) == (1, "")
    assert err == f"syncd: the Supabase project has no user {stranger}\n"
    assert await stack.pool.fetchval("select count(*) from public.projects where title = 'Nobody''s'") == 0
    assert not (state / "store.db").exists()  # Supabase mode never touches the embedded store


async def test_an_idle_project_is_closed_and_its_channel_left(stack: Stack) -> None:
    """A project opens on the first hello; once its last editor left and all is saved, its channel is left."""
    daemon = await stack.start_daemon(NO_RESYNC)
    project_id, scenes = await stack.create_project()
    realtime = stack.supabase.realtime
    assert realtime.subscriptions() == []
    editor = await stack.editor(daemon, project_id)
    await stack.wait_ready(daemon)
    followed = {sub.binding.table for sub in realtime.subscriptions()}
    assert followed == {"projects", "scenes", "clips", "exports", "audio_files"}
    ack = await editor.patch("scenes", scenes[0], {"body": "last words"})
    await editor.close()

    async def left() -> bool:
        return realtime.subscriptions() == []

    await wait_for(left, "the project's channel to be left", WAIT)
    assert (await stack.db_rows(project_id))["scenes"][scenes[0]]["body"] == "last words"
    status, body = await stack.readyz(daemon)
    assert (status, body["reason"]) == (200, "Realtime connected; no project open")
    again = await stack.editor(daemon, project_id)
    assert again.view.scenes[scenes[0]]["body"] == "last words"
    assert again.epoch != editor.epoch
    assert ack.seq > 0


@pytest.mark.parametrize("stall", ["rest_unavailable", "commit_after_kill"])
async def test_a_kill_during_a_flush_applies_each_mutation_once_after_restart(
    stack: Stack, stall: str
) -> None:
    """A daemon killed while its flush retries, or is blocked and commits later, applies each edit once."""
    env = {**NO_RESYNC, "SYNCD_WRITER__RETRY_MAX_DELAY": "0.5"}
    daemon = await stack.start_daemon(env)
    project_id, scenes = await stack.create_project()
    editor = await stack.editor(daemon, project_id)
    await stack.wait_ready(daemon)
    saved = [editor.send_patch("scenes", scenes[1], {"heading": f"saved {i}"}) for i in range(5)]
    await asyncio.gather(*(editor.wait_ack(mid) for mid in saved))
    await editor.wait_saved(timeout=WAIT)
    before = await stack.db_rows(project_id)

    async with stack.pool.acquire() as blocker:
        blocking = blocker.transaction()
        await blocking.start()
        if stall == "rest_unavailable":
            stack.supabase.faults.rest_unavailable = True
        else:
            # syncd_apply takes this lock first: the flush waits inside its transaction until we let go.
            await blocker.execute("select pg_advisory_xact_lock(hashtext($1))", project_id)
        clip = new_id()
        mids = [editor.send_patch("scenes", scenes[0], {"body": f"draft {i}"}) for i in range(10)]
        mids.append(editor.send_insert("clips", {"id": clip, "scene_id": scenes[0], "prompt": "dawn"}))
        mids.append(editor.send_patch("scenes", scenes[1], {"heading": "renamed"}))
        await asyncio.gather(*(editor.wait_ack(mid) for mid in mids))

        async def in_flight() -> bool:
            if stall == "rest_unavailable":
                return daemon.stderr.count("writing project") >= 2
            waiting = await stack.pool.fetchval(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                " and query like '%syncd_apply%' and pid <> pg_backend_pid()"
            )
            return bool(waiting)

        await wait_for(in_flight, "the flush in flight", WAIT)
        await asyncio.to_thread(daemon.kill)
        await editor.close()
        stack.supabase.faults.rest_unavailable = False
        assert await stack.db_rows(project_id) == before
        await blocking.commit()

    if stall == "commit_after_kill":

        async def committed() -> bool:
            return bool((await stack.db_rows(project_id))["scenes"][scenes[0]]["body"] == "draft 9")

        await wait_for(committed, "the killed daemon's flush to commit", WAIT)
        assert await stack.apply_calls() == 2

    await daemon.restart()
    watcher = await stack.editor(daemon, project_id)

    async def replayed() -> bool:
        rows = await stack.db_rows(project_id)
        return clip in rows["clips"] and rows["scenes"][scenes[0]]["body"] == "draft 9"

    await wait_for(replayed, "the replayed edits in the database", WAIT)
    rows = await stack.db_rows(project_id)
    assert rows["scenes"][scenes[1]]["heading"] == "renamed"
    assert rows["clips"][clip]["prompt"] == "dawn"
    # Each row stepped once for the replayed flush: nothing was applied twice.
    assert rows["scenes"][scenes[0]]["version"] == before["scenes"][scenes[0]]["version"] + 1
    assert rows["scenes"][scenes[1]]["version"] == before["scenes"][scenes[1]]["version"] + 1
    assert rows["clips"][clip]["version"] == 1
    recorded = await stack.pool.fetch(
        "select mid from public.syncd_mutations where client_id = $1", editor.client_id
    )
    assert [r["mid"] for r in recorded] == [max(*saved, *mids)]
    await converged(stack, project_id, [watcher])
