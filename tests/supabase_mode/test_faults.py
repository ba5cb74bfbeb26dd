"""Supabase mode under the stand-in's faults: editors converge to the database, no acknowledged edit is lost.

Each test makes edits and has another writer change rows while the fault is on, then waits until every
editor's view equals the database and the database holds the last value of every acknowledged edit.
Where the anti-entropy timer is off (``NO_RESYNC``), the convergence can only come from the Realtime
channel and the re-reads after (re)subscribing; a last change after the fault must then arrive live.
"""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from syncd.client import EditorClient
from tests.supabase_mode.conftest import (
    NO_RESYNC,
    QUICK_RESYNC,
    WAIT,
    Stack,
    converged,
    new_id,
)
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RECOVERY = 20.0
"""Seconds to converge after a fault: Realtime rejoins after 1 s, then waits for "Subscribed"."""


async def edit_during(
    stack: Stack,
    daemon: DaemonProcess,
    project_id: str,
    scenes: list[str],
    editors: list[EditorClient],
    tag: str,
) -> str:
    """Make acknowledged edits and another writer's changes; return the last body written by the editor."""
    author = editors[0]
    mids = [author.send_patch("scenes", scenes[0], {"body": f"{tag} {i}"}) for i in range(5)]
    await asyncio.gather(*(author.wait_ack(mid) for mid in mids))
    await stack.pool.execute(
        "update public.scenes set heading = $2 where id = $1", scenes[1], f"{tag} by them"
    )
    await stack.pool.execute(
        "insert into public.clips (id, project_id, scene_id, prompt) values ($1, $2, $3, $4)",
        new_id(),
        project_id,
        scenes[1],
        f"{tag} clip",
    )
    return f"{tag} 4"


async def settled(
    stack: Stack, project_id: str, scenes: list[str], editors: list[EditorClient], body: str
) -> None:
    """Wait until the editor's last edit is in the database and every view equals the database."""

    async def saved() -> bool:
        return bool((await stack.db_rows(project_id))["scenes"][scenes[0]]["body"] == body)

    await wait_for(saved, f"body {body!r} in the database", RECOVERY)
    await converged(stack, project_id, editors, RECOVERY)
    recorded = await stack.pool.fetchval(
        "select mid from public.syncd_mutations where client_id = $1", editors[0].client_id
    )
    assert recorded == editors[0].next_mid - 1


async def live_again(stack: Stack, project_id: str, scenes: list[str], editors: list[EditorClient]) -> None:
    """A change by another writer after the fault reaches every editor through Realtime."""
    await stack.pool.execute("update public.scenes set heading = 'after' where id = $1", scenes[1])
    for editor in editors:
        await editor.wait_until(partial(shows_heading, editor, scenes[1], "after"), timeout=WAIT)


def shows_heading(editor: EditorClient, scene: str, heading: str) -> bool:
    """Whether the editor's view shows ``heading`` on ``scene``."""
    return bool(editor.view.scenes[scene]["heading"] == heading)


async def open_project(
    stack: Stack, env: dict[str, str]
) -> tuple[DaemonProcess, str, list[str], list[EditorClient]]:
    """A daemon, a project with two scenes, two editors on it, and Realtime subscribed."""
    daemon = await stack.start_daemon(env)
    project_id, scenes = await stack.create_project()
    editors = [await stack.editor(daemon, project_id) for _ in range(2)]
    await stack.wait_ready(daemon)
    return daemon, project_id, scenes, editors


@pytest.mark.parametrize("code", [1006, 1011, 1012])
async def test_a_dropped_realtime_socket_is_rejoined_and_re_read(stack: Stack, code: int) -> None:
    """After a Realtime socket drop (1006, 1011, 1012), changes made meanwhile reach editors; edits save."""
    daemon, project_id, scenes, editors = await open_project(stack, NO_RESYNC)
    await stack.supabase.realtime.drop_sockets(code)
    body = await edit_during(stack, daemon, project_id, scenes, editors, f"drop {code}")
    await settled(stack, project_id, scenes, editors, body)
    await stack.wait_ready(daemon)
    await live_again(stack, project_id, scenes, editors)


async def test_changes_before_a_late_subscribed_are_picked_up_by_the_re_read(stack: Stack) -> None:
    """A change committed between the join reply and a late "Subscribed to PostgreSQL" reaches the editors."""
    daemon = await stack.start_daemon(NO_RESYNC)
    project_id, scenes = await stack.create_project()
    stack.supabase.faults.subscribed_delay = 2.0
    editors = [await stack.editor(daemon, project_id) for _ in range(2)]
    status, body = await stack.readyz(daemon)
    assert status == 503, body
    assert "subscribed" in body["reason"].lower()
    last = await edit_during(stack, daemon, project_id, scenes, editors, "late")
    await settled(stack, project_id, scenes, editors, last)
    await stack.wait_ready(daemon)
    await live_again(stack, project_id, scenes, editors)


async def test_a_system_error_and_the_stale_close_after_it_get_a_new_channel(stack: Stack) -> None:
    """After a system error, its rejoin and the stale phx_close killing the channel, a new channel listens."""
    daemon, project_id, scenes, editors = await open_project(stack, NO_RESYNC)
    await stack.supabase.realtime.push_system_error()
    last = await edit_during(stack, daemon, project_id, scenes, editors, "error")
    await settled(stack, project_id, scenes, editors, last)

    async def renewed() -> bool:
        return "closed unasked" in daemon.stderr

    await wait_for(renewed, "the daemon making a new channel after the stale close", RECOVERY)
    await stack.wait_ready(daemon)
    await live_again(stack, project_id, scenes, editors)


@pytest.mark.parametrize("fault", ["skip_changes", "restart_poller"])
async def test_changes_lost_by_realtime_are_repaired_by_the_resync_timer(stack: Stack, fault: str) -> None:
    """Changes Realtime skips or loses in a poller restart reach the editors through the anti-entropy."""
    daemon, project_id, scenes, editors = await open_project(stack, QUICK_RESYNC)
    realtime = stack.supabase.realtime
    if fault == "skip_changes":
        stack.supabase.faults.skip_changes = 1000
        last = await edit_during(stack, daemon, project_id, scenes, editors, fault)
    else:
        await realtime.pause_polling()
        last = await edit_during(stack, daemon, project_id, scenes, editors, fault)
        await realtime.restart_poller()
        realtime.resume_polling()
    await settled(stack, project_id, scenes, editors, last)
    stack.supabase.faults.skip_changes = 0
    await live_again(stack, project_id, scenes, editors)


async def test_a_ten_second_rest_outage_loses_no_edit(stack: Stack) -> None:
    """Edits made while REST answers 503 for 10 s are all saved once it is back, each applied once."""
    env = {**NO_RESYNC, "SYNCD_WRITER__RETRY_MAX_DELAY": "1"}
    daemon, project_id, scenes, editors = await open_project(stack, env)
    stack.supabase.faults.rest_unavailable = True
    outage = asyncio.get_running_loop().time()
    last = await edit_during(stack, daemon, project_id, scenes, editors, "outage")
    calls = await stack.apply_calls()
    await asyncio.sleep(max(0.0, outage + 10.0 - asyncio.get_running_loop().time()))
    # Nothing could be written meanwhile: the edits are only in the daemon's outbox.
    assert (await stack.db_rows(project_id))["scenes"][scenes[0]]["body"] != last
    assert await stack.apply_calls() == calls
    stack.supabase.faults.rest_unavailable = False
    await settled(stack, project_id, scenes, editors, last)
    await editors[0].wait_saved(timeout=WAIT)
    await live_again(stack, project_id, scenes, editors)
